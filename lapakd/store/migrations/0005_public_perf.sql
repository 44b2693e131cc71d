-- Faster public export. `public_index`: per cached complaint its key and the fields the
-- statistics and filters need, in a narrow table (statistics, filters and change detection
-- run in SQL without reading the serialized records of `public_cache`). `public_blocks`: the
-- open-data files cached per archive block of 100 complaints. `public_state`: the identity of
-- the detail-pages directory the cache describes. All derived data, rebuilt by an export.
DELETE FROM public_cache;
CREATE TABLE public_index (
    complaint_id INTEGER PRIMARY KEY,
    source_key TEXT NOT NULL,      -- as public_cache.source_key
    ticket TEXT NOT NULL,
    received_at TEXT NOT NULL,
    month TEXT NOT NULL,           -- local YYYY-MM of received_at
    channel TEXT,
    category TEXT,
    agencies TEXT NOT NULL,        -- JSON list of agency keys
    kecamatan TEXT,
    status TEXT NOT NULL,
    overdue INTEGER NOT NULL,
    first_answer_at TEXT,
    settled INTEGER NOT NULL
);
-- statistics and filters group by these (covering: the rowid is the complaint id)
CREATE INDEX public_index_category ON public_index(category);
CREATE INDEX public_index_kecamatan ON public_index(kecamatan);
CREATE INDEX public_index_status ON public_index(status);
CREATE INDEX public_index_month ON public_index(month);
CREATE INDEX public_index_channel ON public_index(channel);
CREATE TABLE public_blocks (
    n INTEGER PRIMARY KEY,         -- archive block (halaman/N.html): the Nth 100 complaints
    key TEXT NOT NULL,             -- hash of the members' source keys
    json BLOB NOT NULL,            -- the block's aduan.json objects, newest first, UTF-8
    csv BLOB NOT NULL,             -- its aduan.csv lines
    cari BLOB NOT NULL             -- its data/cari.json rows
);
CREATE TABLE public_state (
    name TEXT PRIMARY KEY,         -- pages:<detail pages directory>
    value TEXT NOT NULL            -- token also written into that directory
);
