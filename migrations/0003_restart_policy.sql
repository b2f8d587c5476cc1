-- Restart policies: what the user asked, how often it was applied, and whether the user
-- stopped the container (which `unless-stopped` and `always` honour differently).
ALTER TABLE containers ADD COLUMN restart_policy TEXT NOT NULL DEFAULT 'no';
ALTER TABLE containers ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE containers ADD COLUMN stopped_by_user INTEGER NOT NULL DEFAULT 0;
ALTER TABLE containers ADD COLUMN next_restart_at TEXT;
