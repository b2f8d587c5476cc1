-- Named volumes (Docker's `local` driver): a directory under `<root>/volumes/<name>`,
-- or a loop-mounted ext4 image there when `size_bytes` is set, or an operator's host
-- directory (`device`, Docker's `type=none,o=bind`). The row is written before the
-- directory is made, so a crash leaves a row that the start-up reconcile finishes,
-- never a directory nobody owns for long (the reconcile removes those).
CREATE TABLE volumes (
    name        TEXT PRIMARY KEY NOT NULL,
    driver      TEXT NOT NULL,
    -- The driver options as given (JSON object of strings).
    options     TEXT NOT NULL DEFAULT '{}',
    labels      TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    -- Made without a name (a random one), for one container: `rm -v` removes it.
    anonymous   INTEGER NOT NULL DEFAULT 0,
    -- The size of its ext4 image (NULL: a plain directory).
    size_bytes  INTEGER,
    -- A host directory bound in its place (NULL: boxd's own directory).
    device      TEXT,
    -- The image's content at the mount target is copied in at the first mount only:
    -- 0 never mounted, 1 copy-up under way (a crash repeats it), 2 mounted before.
    populated   INTEGER NOT NULL DEFAULT 0
);
