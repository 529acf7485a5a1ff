-- Gateway nodes and the roles one of them holds; see migrations/sqlite/20261205000001_cluster.sql.
CREATE TABLE nodes (
    id           TEXT   PRIMARY KEY,
    address      TEXT   NOT NULL,
    version      TEXT   NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE leaders (
    role       TEXT   PRIMARY KEY,
    node       TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

ALTER TABLE jobs ADD COLUMN node TEXT;

-- Secrets every node must share, generated once by the first node (with PostgreSQL, the JWT
-- signing key when auth.jwt_secret is not set; SQLite keeps it in data_dir/jwt-secret).
CREATE TABLE shared_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
