-- 004_search.sql: full-text search over title and body.
ALTER TABLE notes ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', title || ' ' || body)) STORED;
CREATE INDEX notes_search ON notes USING gin (search);
