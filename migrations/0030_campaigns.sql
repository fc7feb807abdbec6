-- Campaigns made by marketers: a sponsored message, its targeting, schedule, budget, bid, caps and
-- pacing. A row per (id, version): an edit or a delete writes a new row with a higher version, so
-- readers use FINAL and see the latest; deleted rows stay as tombstones so every api process's
-- decision engine notices the delete on its next reload. The campaign body is kept as JSON in
-- `spec`; business_id and status are columns because listings filter on them.
CREATE TABLE IF NOT EXISTS ${DB}.campaigns ${ON_CLUSTER} (
  id String,
  business_id String,
  name String,
  status LowCardinality(String),
  spec String,
  version UInt64,
  created_at DateTime64(3, 'UTC'),
  updated_at DateTime64(3, 'UTC'),
  deleted UInt8 DEFAULT 0
) ENGINE = ${ENGINE:ReplacingMergeTree(version)}
ORDER BY id;
