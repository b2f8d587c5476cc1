-- The format of a container's stored spec (`config`, `resources`): the engine's domain
-- types (`runtime::spec`). Every row written so far is version 1, the format those
-- columns have always had; a later format change bumps the version and converts rows.
ALTER TABLE containers ADD COLUMN spec_version INTEGER NOT NULL DEFAULT 1;
