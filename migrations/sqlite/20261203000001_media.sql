-- Media files, content-addressed: the bytes once per sha256 (`media_blobs`), and each upload's
-- name and type (`media`, whose id is derived from the bytes, the type and the name, so the
-- same upload twice is the same media). In the database, so a backup carries them.
CREATE TABLE media_blobs (
    sha256 TEXT    NOT NULL PRIMARY KEY,
    bytes  INTEGER NOT NULL,
    data   BLOB    NOT NULL
);
CREATE TABLE media (
    id         TEXT    NOT NULL PRIMARY KEY,
    sha256     TEXT    NOT NULL REFERENCES media_blobs(sha256),
    mime_type  TEXT    NOT NULL,
    filename   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    -- The last upload or send that needed it: unused media are pruned some time after it.
    used_at    INTEGER NOT NULL
);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_used ON media (used_at);
-- A job that sends a file: which one, and as what (image, video, audio or document); its
-- `message` is then the caption ('' for none).
ALTER TABLE jobs ADD COLUMN media_id TEXT;
ALTER TABLE jobs ADD COLUMN media_as TEXT;
CREATE INDEX jobs_media ON jobs (media_id) WHERE media_id IS NOT NULL;
