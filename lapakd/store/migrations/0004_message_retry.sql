-- Processing that failed transiently (a media download during a Graph outage) is retried later.
ALTER TABLE messages ADD COLUMN retry_at TEXT;
