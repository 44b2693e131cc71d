-- Closing the loop: a second clock for resolution and the citizen's confirmation.
-- resolve_due_at: the resolution deadline (the agency's resolve_days, calendar days; NULL for
--   budget-bound complaints and once the agency says selesai); a BELUM sets a new one.
-- resolved_at: when the agency last said selesai; confirm_due_at: when the complaint closes by
--   itself without the citizen's objection ([desk] confirm_days working days after resolved_at).
-- confirmed_at / confirmation: the citizen's answer ('sudah' | 'belum' | 'auto' for no objection).
-- rating: the citizen's 1-5 mark, rated_at when given; reopen_count: the citizen's BELUMs.
ALTER TABLE complaints ADD COLUMN resolve_days INTEGER;
ALTER TABLE complaints ADD COLUMN resolve_due_at TEXT;
ALTER TABLE complaints ADD COLUMN resolved_at TEXT;
ALTER TABLE complaints ADD COLUMN confirm_due_at TEXT;
ALTER TABLE complaints ADD COLUMN confirmed_at TEXT;
ALTER TABLE complaints ADD COLUMN confirmation TEXT;
ALTER TABLE complaints ADD COLUMN rating INTEGER;
ALTER TABLE complaints ADD COLUMN rated_at TEXT;
ALTER TABLE complaints ADD COLUMN reopen_count INTEGER NOT NULL DEFAULT 0;
CREATE INDEX complaints_resolve_due ON complaints(status, resolve_due_at);
CREATE INDEX complaints_confirm_due ON complaints(status, confirm_due_at);
