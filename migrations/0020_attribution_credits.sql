-- What the attribution processor needs and makes. attribution_touches keeps every touchpoint and
-- conversion it has seen (once per event_id), so a conversion can be credited from touchpoints
-- consumed long ago, and a late touchpoint can find the conversions it changes.
CREATE TABLE IF NOT EXISTS ${DB}.attribution_touches ${ON_CLUSTER} (
  event_id String,
  type LowCardinality(String),
  occurred_at DateTime64(3, 'UTC'),
  business_id String,
  user_id String,
  campaign_id String,
  value Float64
) ENGINE = ${ENGINE:ReplacingMergeTree}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (business_id, user_id, occurred_at, event_id);

-- Credits per (model, conversion, campaign) at the default windows. A re-credit writes the
-- conversion's rows again with a higher version (the number of touchpoints it considered, which
-- only grows), and zero-weight rows for campaigns (or '' = unattributed) that lost their share,
-- so reads with FINAL always see the latest split. The conversion's time is fixed, so its rows
-- share one partition.
CREATE TABLE IF NOT EXISTS ${DB}.attribution_credits ${ON_CLUSTER} (
  model LowCardinality(String),
  conversion_id String,
  campaign_id String,
  conversion_type LowCardinality(String),
  occurred_at DateTime64(3, 'UTC'),
  business_id String,
  user_id String,
  weight Float64,
  value Float64,
  version UInt64
) ENGINE = ${ENGINE:ReplacingMergeTree(version)}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (model, conversion_id, campaign_id);
