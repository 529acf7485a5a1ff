-- Pacing: what each session really sent (the sliding windows of the caps; pruned after two
-- days), who it has exchanged messages with (the first-contact rule), and per session its own
-- rules, when its number was linked (the warm-up) and a cooldown in force.
CREATE TABLE sent_log (
    session       TEXT    NOT NULL,
    chat_id       TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    first_contact INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sent_log_session_at ON sent_log (session, at);

CREATE TABLE contacts (
    session  TEXT    NOT NULL,
    chat_id  TEXT    NOT NULL,
    first_at INTEGER NOT NULL,
    PRIMARY KEY (session, chat_id)
) WITHOUT ROWID;

ALTER TABLE sessions ADD COLUMN pacing TEXT;
ALTER TABLE sessions ADD COLUMN linked_at INTEGER;
ALTER TABLE sessions ADD COLUMN cooldown_until INTEGER;
ALTER TABLE sessions ADD COLUMN cooldown_reason TEXT;

-- The rule that holds a waiting job back, until its run_at (NULL: none).
ALTER TABLE jobs ADD COLUMN paced TEXT;
