-- Keep expires_at within years that every component can handle. PostgreSQL
-- accepts 'infinity' and years up to 294276, but Python's datetime stops at
-- 9999 and one such row would fail every batch it is read in. NOT VALID keeps
-- the migration from failing on rows that already exist; new and updated rows
-- are checked.
ALTER TABLE net119.users
    ADD CONSTRAINT users_expires_at_range
    CHECK (expires_at >= '2000-01-01 00:00+09' AND expires_at < '2200-01-01 00:00+09')
    NOT VALID;
