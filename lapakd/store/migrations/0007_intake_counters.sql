-- Per-channel intake counters, shown by `lapakd status`: `duplicates_dropped` counts messages
-- fetched again that were already stored byte for byte (or, after a mailbox was rebuilt, by
-- Message-ID). Messages kept but never processed (mail read before lapakd's first poll) are
-- rows of `messages` with state 'seen_before'.
CREATE TABLE channel_counters (
    channel TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, name)
);
