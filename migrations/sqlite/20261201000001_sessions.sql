-- WhatsApp accounts ("sessions"): each with its own driver, browser profile and queue lane.
-- `started` is the desired state: a started session is started again after a restart.
-- NULL settings fall back to gateway.toml. `state`, `detail` and `qr` mirror what the running
-- gateway sees, for the CLI (`wa-gateway session list|qr`).
CREATE TABLE sessions (
    name         TEXT    PRIMARY KEY,
    driver       TEXT    NOT NULL CHECK (driver IN ('webdriver', 'sandbox')),
    started      INTEGER NOT NULL DEFAULT 1,
    paused       INTEGER NOT NULL DEFAULT 0,
    concurrency  INTEGER,
    browser_args TEXT,
    memory_limit INTEGER,
    me           TEXT,
    state        TEXT,
    detail       TEXT,
    qr           TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Jobs gain their session; a `messageId` is unique per session. SQLite cannot drop a UNIQUE
-- constraint, so the table is rebuilt (the rows keep their seq).
CREATE TABLE jobs_new (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    session     TEXT    NOT NULL DEFAULT 'default',
    message_id  TEXT    NOT NULL,
    number      TEXT    NOT NULL,
    chat_id     TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    template    TEXT,
    priority    INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('waiting', 'active', 'completed', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    error_code  TEXT,
    error_message TEXT,
    run_at      INTEGER NOT NULL,
    lease       INTEGER,
    rescues     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER,
    receipt     TEXT,
    UNIQUE (session, message_id)
);
INSERT INTO jobs_new (seq, id, session, message_id, number, chat_id, message, template, priority,
                      status, attempts, error_code, error_message, run_at, lease, rescues,
                      created_at, updated_at, finished_at, receipt)
    SELECT seq, id, 'default', message_id, number, chat_id, message, template, priority, status,
           attempts, error_code, error_message, run_at, lease, rescues, created_at, updated_at,
           finished_at, receipt
    FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
-- Claims are per session: priority then age within each.
CREATE INDEX jobs_claim ON jobs(session, priority, seq) WHERE status = 'waiting';
CREATE INDEX jobs_status ON jobs(status, seq);
CREATE INDEX jobs_finished ON jobs(status, finished_at) WHERE finished_at IS NOT NULL;
