-- Every canonical event, once. event_id is the idempotency key: it ends the sort key, so rows
-- with the same event_id (the same event ingested twice) collapse on merge, and queries read
-- with FINAL so they never double count before merges happen. Partitioned by month of
-- occurred_at so late events land in their own month and old months can be dropped whole.
CREATE TABLE IF NOT EXISTS ${DB}.events ${ON_CLUSTER} (
  event_id String,
  type LowCardinality(String),
  occurred_at DateTime64(3, 'UTC'),
  business_id String,
  user_id String,
  thread_id String,
  channel LowCardinality(String),
  props String CODEC(ZSTD(1)),
  -- When the row reached the store (informational; replays may move it).
  ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
  campaign_id String MATERIALIZED JSONExtractString(props, 'campaign_id'),
  decision_id String MATERIALIZED JSONExtractString(props, 'decision_id'),
  value Float64 MATERIALIZED JSONExtractFloat(props, 'value')
) ENGINE = ${ENGINE:ReplacingMergeTree}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (business_id, user_id, occurred_at, event_id);
