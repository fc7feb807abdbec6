-- Keys managed through the keys API: a key may hold several roles, has an id and a name people
-- can refer to, and may expire (the old secret of a rotated key stays valid for an overlap).
ALTER TABLE ${DB}.api_keys ${ON_CLUSTER}
  ADD COLUMN IF NOT EXISTS id String DEFAULT substring(key_hash, 1, 16),
  ADD COLUMN IF NOT EXISTS name String DEFAULT '',
  ADD COLUMN IF NOT EXISTS roles Array(LowCardinality(String)) DEFAULT [role],
  ADD COLUMN IF NOT EXISTS created_by String DEFAULT '',
  ADD COLUMN IF NOT EXISTS expires_at Nullable(DateTime64(3, 'UTC'));
