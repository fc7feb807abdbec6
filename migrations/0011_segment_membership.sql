-- Current membership of every segment, kept by the segments processor (and initialised by the
-- API when a segment is created or changed). A change writes a row with a higher version; the
-- latest row per (segment_id, user_id) wins, so replays that write the same change are harmless.
-- member = 0 rows record exits.
CREATE TABLE IF NOT EXISTS ${DB}.segment_membership ${ON_CLUSTER} (
  segment_id String,
  user_id String,
  business_id String,
  member UInt8,
  changed_at DateTime64(3, 'UTC'),
  version UInt64
) ENGINE = ${ENGINE:ReplacingMergeTree(version)}
ORDER BY (segment_id, user_id);
