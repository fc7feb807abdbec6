-- Who changed what, and when: key changes and erasures. Entries hold ids and key fingerprints,
-- never secrets or a person's data.
CREATE TABLE IF NOT EXISTS ${DB}.audit_log ${ON_CLUSTER} (
  at DateTime64(3, 'UTC'),
  id String,
  actor LowCardinality(String),
  action LowCardinality(String),
  target String,
  details String
) ENGINE = ${ENGINE:MergeTree}
ORDER BY (at, id);
