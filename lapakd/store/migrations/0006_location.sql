-- Where a complaint is, as fields: from a WhatsApp location message, an X post's coordinates or
-- place, or coordinates/map links in the text. Private at full precision; the public site
-- publishes them rounded to 3 decimals (about 100 m) and never as text.
ALTER TABLE complaints ADD COLUMN lat REAL;
ALTER TABLE complaints ADD COLUMN lon REAL;
