-- The daily check of each social channel's access token (lapakd/monitor/tokens.py): what Graph's
-- debug_token said last, kept as data for `lapakd status`. The token itself is never stored,
-- only its fingerprint (a new token in lapakd.toml is checked at once).
CREATE TABLE token_checks (
    channel TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'unknown',  -- valid | invalid | unknown (never checked yet)
    expires_at TEXT,                 -- NULL with state valid: the token never expires
    data_access_expires_at TEXT,
    invalid_since TEXT,              -- first check (or call) that found it invalid
    reason TEXT,                     -- Graph's message for an invalid token
    checked_at TEXT,                 -- last check that got an answer
    next_check_at TEXT NOT NULL,
    error TEXT,                      -- last check that failed (network, throttling...), if any
    error_at TEXT
);
