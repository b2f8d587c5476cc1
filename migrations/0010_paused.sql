-- Whether a running container is paused (its cgroup frozen). The freezer is the kernel's
-- record of it; this column is what the user asked, kept so that list and inspect need
-- no cgroup read, and brought back in line with the freezer by the start-up reconcile.
-- Every exit and start clears it.
ALTER TABLE containers ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
