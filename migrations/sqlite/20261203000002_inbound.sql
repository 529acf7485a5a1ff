-- Messages sessions received, each once (by WhatsApp's id for it, per session); pruned with
-- completed jobs.
CREATE TABLE inbound (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    session     TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    chat_id     TEXT    NOT NULL,
    from_number TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    media_type  TEXT,
    at          INTEGER NOT NULL,
    UNIQUE (session, message_id)
);
CREATE INDEX inbound_at ON inbound (at);
-- Numbers that asked a session to stop writing to them (a keyword, or through the API): a send
-- to one fails `opted-out` unless the job says to send anyway.
CREATE TABLE opt_outs (
    session    TEXT    NOT NULL,
    number     TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session, number)
) WITHOUT ROWID;
ALTER TABLE jobs ADD COLUMN ignore_opt_out INTEGER NOT NULL DEFAULT 0;
