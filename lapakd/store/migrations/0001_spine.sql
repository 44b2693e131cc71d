-- The spine: raw messages, complaints, attachments, cursors, outbox, events, channel health.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    raw BLOB NOT NULL,
    raw_format TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    received_at TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | processed | quarantined
    kind TEXT,                               -- complaint | auto_reply | bounce | own | ...
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    complaint_id INTEGER REFERENCES complaints(id),
    UNIQUE (channel, external_id)
);
CREATE INDEX messages_state ON messages(state);
CREATE INDEX messages_complaint ON messages(complaint_id);

CREATE TABLE complaints (
    id INTEGER PRIMARY KEY,
    ticket TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,          -- new | triage | forwarded | ignored | quarantined | ...
    sender TEXT,                   -- private: address / handle / phone
    sender_name TEXT,
    conversation TEXT,             -- chat grouping key, NULL for one-message complaints
    reply_ref TEXT NOT NULL DEFAULT '{}',
    subject TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '[]',
    received_at TEXT NOT NULL,
    route_after TEXT NOT NULL,     -- routing waits until the chat window closes
    category TEXT,
    agencies TEXT NOT NULL DEFAULT '[]',
    rule TEXT,
    matched TEXT NOT NULL DEFAULT '[]',
    budget_dependent INTEGER NOT NULL DEFAULT 0,
    sla_days INTEGER,
    due_at TEXT,
    kecamatan TEXT,
    public INTEGER NOT NULL DEFAULT 1,
    public_text TEXT,
    merged_into INTEGER REFERENCES complaints(id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX complaints_status ON complaints(status, route_after);
CREATE INDEX complaints_conversation ON complaints(channel, conversation, status);
CREATE INDEX complaints_received ON complaints(received_at);

CREATE TABLE ticket_sequences (
    scope TEXT PRIMARY KEY,        -- "<prefix>-<year>"
    last INTEGER NOT NULL
);

CREATE TABLE attachments (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    complaint_id INTEGER REFERENCES complaints(id),
    sha256 TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    UNIQUE (message_id, sha256, filename)
);
CREATE INDEX attachments_complaint ON attachments(complaint_id);

CREATE TABLE cursors (
    channel TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,            -- forward | triage | alert | ack | ...
    transport TEXT NOT NULL,       -- smtp | a channel name
    complaint_id INTEGER REFERENCES complaints(id),
    recipients TEXT NOT NULL DEFAULT '[]',
    payload TEXT NOT NULL DEFAULT '{}',
    dedupe_key TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL UNIQUE,   -- RFC Message-ID / idempotency key, same on resend
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | sending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    result TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_complaint ON outbox(complaint_id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    complaint_id INTEGER REFERENCES complaints(id),
    message_id INTEGER REFERENCES messages(id),
    outbox_id INTEGER REFERENCES outbox(id),
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_complaint ON events(complaint_id);
CREATE INDEX events_message ON events(message_id);

CREATE TABLE channel_health (
    channel TEXT PRIMARY KEY,
    state TEXT NOT NULL DEFAULT 'ok',   -- ok | error | paused | needs_reauth
    last_success TEXT,
    last_error TEXT,
    last_error_at TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    next_try_at TEXT
);
