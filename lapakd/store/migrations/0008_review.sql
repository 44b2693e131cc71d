-- Review before publishing ([public] review = true): a complaint or an agency answer stored
-- while review is on waits (1) until an admin runs `lapakd publish` (or `hide`). Rows stored
-- before, or with review off, are published as before (0). Who published, and when: events.
ALTER TABLE complaints ADD COLUMN awaiting_review INTEGER NOT NULL DEFAULT 0;
ALTER TABLE updates ADD COLUMN awaiting_review INTEGER NOT NULL DEFAULT 0;
CREATE INDEX complaints_review ON complaints(id) WHERE awaiting_review = 1;
CREATE INDEX updates_review ON updates(id) WHERE awaiting_review = 1;
