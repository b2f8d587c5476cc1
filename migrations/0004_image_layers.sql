-- Images made of layers. A layer is keyed by its chain id (the OCI ChainID: its diff_id
-- stacked on its parent's chain id) and unpacked once under images/layers/<hex>/rootfs;
-- images list their layers bottom first. Config blobs and registry digests are kept
-- for inspect and for pulls by digest.
--
-- Every image stored before this migration is a plain rootfs import: one layer whose
-- chain id, diff_id and image id are all the sha256 of its tar. The rows below make
-- those images one-layer images; the image store moves their directories into
-- layers/ when it opens, so old rows stay valid.

CREATE TABLE layers (
    chain_id    TEXT PRIMARY KEY NOT NULL,          -- sha256:<hex>
    diff_id     TEXT NOT NULL,                      -- sha256 of the uncompressed tar
    parent      TEXT,                               -- chain id of the layer below
    size        INTEGER NOT NULL,                   -- bytes of regular files unpacked
    created_at  TEXT NOT NULL
);

CREATE TABLE image_layers (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,                   -- 0 = bottom layer
    chain_id    TEXT NOT NULL REFERENCES layers(chain_id),
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_chain ON image_layers(chain_id);

-- Registry digests (repo@sha256:...) an image was pulled as, newline-separated.
ALTER TABLE images ADD COLUMN repo_digests TEXT NOT NULL DEFAULT '';

INSERT INTO layers (chain_id, diff_id, parent, size, created_at)
    SELECT id, id, NULL, size, created_at FROM images;
INSERT INTO image_layers (image_id, position, chain_id)
    SELECT id, 0, id FROM images;
