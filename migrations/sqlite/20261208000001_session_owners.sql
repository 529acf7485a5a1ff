-- Which node runs each session's driver. A node owns a session while its row names it and
-- `expires_at` has not passed; it renews every third of its lease, and every takeover adds one
-- to `epoch`, so a node that wakes up late finds a higher epoch and sends nothing. A clean
-- stop sets `node` to NULL (the epoch stays), so another node takes the session at once.
-- With SQLite there is one node, and it owns every session it runs.
CREATE TABLE session_owners (
    session    TEXT    PRIMARY KEY,
    node       TEXT,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- What a node asks of the node that runs a session (restart, logout, a pairing code, a
-- number check): the owner picks it up, does it and writes `result` (JSON) or `error`.
CREATE TABLE session_commands (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session    TEXT    NOT NULL,
    command    TEXT    NOT NULL,
    arg        TEXT,
    created_at INTEGER NOT NULL,
    done_at    INTEGER,
    result     TEXT,
    error_code TEXT,
    error      TEXT
);
CREATE INDEX session_commands_open ON session_commands (session) WHERE done_at IS NULL;

-- The part of each session's browser profile that keeps its login (IndexedDB, Local
-- Storage), compressed: the node that takes a session over restores it, so a move needs no
-- new scan. One row per session, replaced by each new snapshot.
CREATE TABLE session_profiles (
    session  TEXT    PRIMARY KEY,
    taken_at INTEGER NOT NULL,
    node     TEXT    NOT NULL,
    size     INTEGER NOT NULL,
    data     BLOB    NOT NULL
);
