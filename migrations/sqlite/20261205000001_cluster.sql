-- Gateway nodes on this database. A node renews `expires_at` every third of its lease; one
-- whose `expires_at` has passed is dead, and its active jobs go back to waiting. With SQLite
-- there is one node, and the same rules hold.
CREATE TABLE nodes (
    id           TEXT    PRIMARY KEY,
    address      TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

-- Work that runs on one node at a time (retention, webhook deliveries): the node that holds
-- a role's unexpired row does it, renewing it as it heartbeats.
CREATE TABLE leaders (
    role       TEXT    PRIMARY KEY,
    node       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);

-- The node whose claim a job is (or last was) under.
ALTER TABLE jobs ADD COLUMN node TEXT;

-- Secrets every node must share, generated once by the first node (with PostgreSQL, the JWT
-- signing key when auth.jwt_secret is not set; SQLite keeps it in data_dir/jwt-secret).
CREATE TABLE shared_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
