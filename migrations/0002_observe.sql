-- What boxd observes of containers: per-container memory-event state of the current
-- run, one exit record per run, and an index for the events' time-based retention.

-- One row per container that has been started. `oom_kills` and `pressure_events` are
-- what was already reported as events in the current run, so a restarted daemon
-- reports only kills it has not reported yet; the row is reset at every start.
CREATE TABLE container_memory (
    container_id           TEXT PRIMARY KEY NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    warning_percent        INTEGER,                      -- NULL: the default (90)
    oom_baseline           INTEGER NOT NULL DEFAULT 0,   -- the group's oom_kill counter at start
    oom_kills              INTEGER NOT NULL DEFAULT 0,
    pressure_events        INTEGER NOT NULL DEFAULT 0,
    counters               TEXT NOT NULL DEFAULT '{}'    -- latest kernel counters (JSON)
);

-- One row per run's end (restarts included), written before the run's cgroup is removed.
CREATE TABLE exits (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    container_id  TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    finished_at   TEXT NOT NULL,
    record        TEXT NOT NULL                          -- ExitInfo (JSON), without seq
);
CREATE INDEX exits_container ON exits(container_id, seq);

CREATE INDEX events_time ON events(time);
