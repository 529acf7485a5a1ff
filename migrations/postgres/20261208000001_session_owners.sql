-- Session owners, commands for owners and login snapshots; see
-- migrations/sqlite/20261208000001_session_owners.sql.
CREATE TABLE session_owners (
    session    TEXT   PRIMARY KEY,
    node       TEXT,
    epoch      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE session_commands (
    id         BIGSERIAL PRIMARY KEY,
    session    TEXT   NOT NULL,
    command    TEXT   NOT NULL,
    arg        TEXT,
    created_at BIGINT NOT NULL,
    done_at    BIGINT,
    result     TEXT,
    error_code TEXT,
    error      TEXT
);
CREATE INDEX session_commands_open ON session_commands (session) WHERE done_at IS NULL;

CREATE TABLE session_profiles (
    session  TEXT   PRIMARY KEY,
    taken_at BIGINT NOT NULL,
    node     TEXT   NOT NULL,
    size     BIGINT NOT NULL,
    data     BYTEA  NOT NULL
);
