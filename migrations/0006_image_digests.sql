-- Repo digests (`name@sha256:<hex>`, the name in its familiar form) become references
-- of their own, kept as Docker's reference store keeps them: one row per digest
-- reference, pointing at one image, so an image is found by the digest it was pulled
-- as, and a later pull of the same reference moves it (as a tag moves). The rows
-- replace the newline-separated `images.repo_digests` column.
CREATE TABLE image_digests (
    name        TEXT PRIMARY KEY NOT NULL,          -- e.g. busybox@sha256:<hex>
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX image_digests_image ON image_digests(image_id);

WITH RECURSIVE split(image_id, name, rest) AS (
    SELECT id, '', repo_digests || char(10) FROM images WHERE repo_digests != ''
    UNION ALL
    SELECT image_id,
           substr(rest, 1, instr(rest, char(10)) - 1),
           substr(rest, instr(rest, char(10)) + 1)
    FROM split WHERE rest != ''
)
INSERT OR REPLACE INTO image_digests (name, image_id)
    SELECT name, image_id FROM split WHERE name != '';

ALTER TABLE images DROP COLUMN repo_digests;

-- Tags are stored in the familiar form (`busybox:latest`, `test/app:1`). Imports
-- before one grammar existed kept the long form as given (`docker.io/library/busybox:latest`),
-- which a lookup of `busybox` would miss; a long name whose familiar form is already
-- taken stays as it was.
WITH stripped(old, rest) AS (
    SELECT name, CASE
        WHEN name LIKE 'index.docker.io/%' THEN substr(name, length('index.docker.io/') + 1)
        WHEN name LIKE 'docker.io/%' THEN substr(name, length('docker.io/') + 1)
        ELSE name END
    FROM image_tags
), familiar(old, new) AS (
    SELECT old, CASE
        WHEN rest LIKE 'library/%' AND instr(substr(rest, length('library/') + 1), '/') = 0
        THEN substr(rest, length('library/') + 1)
        ELSE rest END
    FROM stripped
)
UPDATE OR IGNORE image_tags
    SET name = (SELECT new FROM familiar WHERE familiar.old = image_tags.name)
    WHERE name IN (SELECT old FROM familiar WHERE old != new);
