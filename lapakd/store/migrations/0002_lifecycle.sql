-- Following complaints to an answer: public updates (agency answers, desk replies, status
-- changes), the first agency answer, and when the complaint was closed.
CREATE TABLE updates (
    id INTEGER PRIMARY KEY,
    complaint_id INTEGER NOT NULL REFERENCES complaints(id),
    at TEXT NOT NULL,
    source TEXT NOT NULL,          -- agency | desk
    agency TEXT,                   -- agency key when source = agency
    actor TEXT NOT NULL,           -- sender address or the admin's --by
    text TEXT NOT NULL DEFAULT '', -- public text: new text only, redacted
    raw_text TEXT NOT NULL DEFAULT '',  -- what arrived, private
    status_set TEXT,               -- the status this update set, if any
    message_id INTEGER REFERENCES messages(id),
    public INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX updates_complaint ON updates(complaint_id, at);
CREATE INDEX updates_agency ON updates(agency, at);
ALTER TABLE complaints ADD COLUMN first_answer_at TEXT;
ALTER TABLE complaints ADD COLUMN closed_at TEXT;
CREATE INDEX complaints_due ON complaints(status, due_at);
CREATE INDEX complaints_merged ON complaints(merged_into);
