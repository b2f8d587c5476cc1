-- Networks as objects (each a CNI conflist owned by boxd) and the attachments of
-- running containers to them.
CREATE TABLE networks (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    -- The Linux bridge the `bridge` plugin makes (unique: two networks never share one).
    bridge      TEXT NOT NULL UNIQUE,
    subnet      TEXT NOT NULL,
    gateway     TEXT NOT NULL,
    -- IPv6, when the network has it (NULL: IPv4 only).
    subnet6     TEXT,
    gateway6    TEXT,
    -- No NAT and no route out: containers reach each other only.
    internal    INTEGER NOT NULL DEFAULT 0,
    labels      TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    -- An operator's own CNI configuration list, used as it is (NULL: boxd makes the
    -- list from the columns above).
    conflist    TEXT
);

-- One row per container run attached to a network, written before the CNI ADD, so that
-- a crash at any point leaves a row the reconcile can DEL. `conflist` is the exact
-- configuration given to the plugins and `result` what they answered (NULL until the
-- ADD succeeded): DEL and CHECK need both, even after the network is gone. No foreign
-- key to `containers`: a row outlives a container whose DEL failed, until it succeeds.
CREATE TABLE attachments (
    container_id   TEXT NOT NULL,
    network        TEXT NOT NULL,
    ifname         TEXT NOT NULL,
    netns          TEXT NOT NULL,
    conflist       TEXT NOT NULL,
    runtime_config TEXT NOT NULL,
    result         TEXT,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (container_id, network)
);
