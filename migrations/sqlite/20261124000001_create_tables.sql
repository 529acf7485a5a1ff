-- Users who may call the API. Passwords are argon2id PHC strings.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Refresh tokens, stored as SHA-256 of the token. A rotated token keeps its row with used_at
-- set, so that presenting it again is recognised as reuse.
CREATE TABLE refresh_tokens (
    token_hash TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);

-- The message queue. Times are unix milliseconds.
CREATE TABLE jobs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    message_id  TEXT    NOT NULL UNIQUE,
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
    finished_at INTEGER
);
CREATE INDEX jobs_claim ON jobs(priority, seq) WHERE status = 'waiting';
CREATE INDEX jobs_status ON jobs(status, seq);

-- Settings changed at run time through the API (they win over gateway.toml after a restart).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
