-- Every `lapakd run` and `run --once` on this store, so that `lapakd status` can tell a store
-- the daemon never ran on, and since when a push-only channel (WhatsApp) has been enabled.
CREATE TABLE daemon_runs (
    id INTEGER PRIMARY KEY,
    mode TEXT NOT NULL,            -- daemon | once
    pid INTEGER NOT NULL,
    channels TEXT NOT NULL DEFAULT '[]',  -- the channels enabled for this run
    started_at TEXT NOT NULL,
    finished_at TEXT,              -- NULL: still running, or killed
    problems TEXT                  -- what failed during a run --once (JSON list)
);
