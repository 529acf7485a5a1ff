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

-- Every completion is logged by the statement that completes it, at no extra round trip: the
-- chat is a first contact when the session had never written to it.
CREATE TRIGGER jobs_sent AFTER UPDATE OF status ON jobs
WHEN NEW.status = 'completed' AND OLD.status = 'active'
BEGIN
    INSERT INTO sent_log (session, chat_id, at, first_contact)
    VALUES (NEW.session, NEW.chat_id, NEW.finished_at,
            NOT EXISTS (SELECT 1 FROM contacts WHERE session = NEW.session AND chat_id = NEW.chat_id));
    INSERT OR IGNORE INTO contacts (session, chat_id, first_at)
    VALUES (NEW.session, NEW.chat_id, NEW.finished_at);
END;

ALTER TABLE sessions ADD COLUMN pacing TEXT;
ALTER TABLE sessions ADD COLUMN linked_at INTEGER;
ALTER TABLE sessions ADD COLUMN cooldown_until INTEGER;
ALTER TABLE sessions ADD COLUMN cooldown_reason TEXT;

-- The rule that holds a waiting job back, until its run_at (NULL: none).
ALTER TABLE jobs ADD COLUMN paced TEXT;
