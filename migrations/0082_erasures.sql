-- Erasures of people. A row names the person only by a keyed hash of the user id (never the id),
-- with a 16-bit bucket of the id that lets every consumer skip the hash for almost every event.
-- Consumers drop the events of an erased person that the bus accepted before the erasure, so a
-- replay of the bus never brings them back. Progress is a new version of the row.
CREATE TABLE IF NOT EXISTS ${DB}.erasures ${ON_CLUSTER} (
  id String,
  user_hash String,
  bucket UInt16,
  business_id String,
  requested_at DateTime64(3, 'UTC'),
  requested_by String,
  status LowCardinality(String),
  steps String,
  updated_at DateTime64(3, 'UTC'),
  version UInt64
) ENGINE = ${ENGINE:ReplacingMergeTree(version)}
ORDER BY id;
