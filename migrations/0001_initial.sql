-- boxd's first schema: images, containers and the event log.
-- Timestamps are RFC 3339 UTC text; JSON columns hold the wire types of client/src/models.rs.

CREATE TABLE images (
    id          TEXT PRIMARY KEY NOT NULL,          -- sha256:<hex> of the uncompressed rootfs tar
    size        INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    config      TEXT NOT NULL DEFAULT '{}'          -- default cmd/env/working_dir (JSON)
);

CREATE TABLE image_tags (
    name        TEXT PRIMARY KEY NOT NULL,          -- normalised reference, e.g. busybox:latest
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX image_tags_image ON image_tags(image_id);

CREATE TABLE containers (
    id           TEXT PRIMARY KEY NOT NULL,         -- 64 hex digits
    name         TEXT NOT NULL UNIQUE,
    image        TEXT NOT NULL,                     -- the reference as given
    image_id     TEXT NOT NULL REFERENCES images(id),
    state        TEXT NOT NULL CHECK (state IN ('created', 'running', 'exited', 'dead')),
    config       TEXT NOT NULL,                     -- ContainerConfig (JSON)
    resources    TEXT NOT NULL,                     -- Resources (JSON)
    pid          INTEGER,
    shim_pid     INTEGER,
    exit_code    INTEGER,
    exit_signal  INTEGER,
    oom_killed   INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX containers_image ON containers(image_id);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- monotonic, never reused
    time        TEXT NOT NULL,
    type        TEXT NOT NULL,
    action      TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    attributes  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_actor ON events(actor_id);
