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
CREATE TRIGGER complaint_fts_insert AFTER INSERT ON complaints BEGIN
    INSERT INTO complaint_fts(rowid, subject, text) VALUES (new.id, new.subject, new.text); END;
CREATE TRIGGER complaint_fts_delete AFTER DELETE ON complaints BEGIN
    INSERT INTO complaint_fts(complaint_fts, rowid, subject, text)
    VALUES ('delete', old.id, old.subject, old.text); END;
CREATE TRIGGER complaint_fts_update AFTER UPDATE OF subject, text ON complaints BEGIN
    INSERT INTO complaint_fts(complaint_fts, rowid, subject, text)
    VALUES ('delete', old.id, old.subject, old.text); INSERT INTO complaint_fts(rowid, subject, text)
    VALUES (new.id, new.subject, new.text); END;
