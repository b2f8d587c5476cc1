-- User namespaces: the 65536-id slots of the daemon's `userns_range` handed to
-- containers created with `userns: "auto"`. A slot belongs to one container from its
-- create to its delete (its upper dir holds files owned by the slot's host ids, so the
-- slot must not change across restarts), and is freed with the container's row.
CREATE TABLE userns_slots (
    slot         INTEGER PRIMARY KEY NOT NULL,
    container_id TEXT NOT NULL UNIQUE REFERENCES containers(id) ON DELETE CASCADE
);
