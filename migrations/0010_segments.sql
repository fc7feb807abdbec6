-- Segment definitions made by marketers. A row per (id, version): an edit or a delete writes a
-- new row with a higher version, so readers use FINAL and see the latest; deleted rows stay as
-- tombstones so the segments processor notices the delete. business_id is '' for a segment over
-- every business.
CREATE TABLE IF NOT EXISTS ${DB}.segments ${ON_CLUSTER} (
  id String,
  name String,
  business_id String,
  rule String,
  version UInt64,
  created_at DateTime64(3, 'UTC'),
  updated_at DateTime64(3, 'UTC'),
  deleted UInt8 DEFAULT 0
) ENGINE = ${ENGINE:ReplacingMergeTree(version)}
ORDER BY id;
