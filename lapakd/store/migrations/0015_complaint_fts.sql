-- Full-text index over the complaints' subject and text (SQLite FTS5, external content: the
-- text lives once, in complaints), kept in sync by triggers on every path that writes it.
-- lapakd/routing/duplicates.py asks it for open complaints that may be the same problem.
-- (Each trigger is on lines that end with ';' only at its END: the migration runner splits
-- statements at line ends.)
CREATE VIRTUAL TABLE complaint_fts USING fts5(
    subject, text, content='complaints', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
INSERT INTO complaint_fts(complaint_fts) VALUES ('rebuild');
-- The candidates of a lookup: same kecamatan, then category and the 14-day window.
CREATE INDEX complaints_place ON complaints(kecamatan, category, received_at);
-- How many complaints hold each word: the rare words are the ones worth asking about.
CREATE VIRTUAL TABLE complaint_fts_terms USING fts5vocab(complaint_fts, 'row');
CREATE TRIGGER complaint_fts_insert AFTER INSERT ON complaints BEGIN
    INSERT INTO complaint_fts(rowid, subject, text) VALUES (new.id, new.subject, new.text); END;
CREATE TRIGGER complaint_fts_delete AFTER DELETE ON complaints BEGIN
    INSERT INTO complaint_fts(complaint_fts, rowid, subject, text)
    VALUES ('delete', old.id, old.subject, old.text); END;
CREATE TRIGGER complaint_fts_update AFTER UPDATE OF subject, text ON complaints BEGIN
    INSERT INTO complaint_fts(complaint_fts, rowid, subject, text)
    VALUES ('delete', old.id, old.subject, old.text); INSERT INTO complaint_fts(rowid, subject, text)
    VALUES (new.id, new.subject, new.text); END;
