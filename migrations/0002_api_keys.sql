-- API keys made by Parley itself (the first-start admin key). Only a SHA-256 of each key is
-- kept; keys given in PARLEY_API_KEYS are never written here.
CREATE TABLE IF NOT EXISTS ${DB}.api_keys ${ON_CLUSTER} (
  key_hash String,
  role LowCardinality(String),
  businesses Array(String),
  created_at DateTime64(3, 'UTC'),
  revoked UInt8 DEFAULT 0
) ENGINE = ${ENGINE:ReplacingMergeTree}
ORDER BY key_hash;
