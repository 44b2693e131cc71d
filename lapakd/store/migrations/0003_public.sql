-- The public site: admins can hide a complaint; the exporter caches what it published per
-- complaint (keyed by what it was built from), so a re-export only rebuilds what changed.
ALTER TABLE complaints ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
CREATE TABLE public_cache (
    complaint_id INTEGER PRIMARY KEY,
    source_key TEXT NOT NULL,      -- version | updated_at | last event | last update | overdue
    record TEXT NOT NULL,          -- the aduan.json object, serialized
    csv TEXT NOT NULL,             -- its aduan.csv line
    row TEXT NOT NULL              -- compact row for the list, search and statistics
);
