-- The first accepted copy of every event_id as the sink stored it: where it sat on the bus
-- (partition, offset) and when the bus accepted it. Sorted by event_id alone, so a batch's
-- possible duplicates are found in one query whatever user or time a later copy carries; every
-- consumer of the events topic asks it whether a copy it reads is the first. A replayed first
-- copy writes the same row again; two rows for one id (copies that raced in two sinks) are
-- resolved by readers, earliest (accepted_at, bus_partition, bus_offset) first. Partitioned by
-- month of registration so a process can read just the ids registered since it last looked.
CREATE TABLE IF NOT EXISTS ${DB}.event_ids ${ON_CLUSTER} (
  event_id String,
  bus_partition UInt32,
  bus_offset UInt64,
  accepted_at DateTime64(3, 'UTC'),
  registered_at DateTime64(3, 'UTC') DEFAULT now64(3),
  INDEX registered registered_at TYPE minmax GRANULARITY 1
) ENGINE = ${ENGINE:ReplacingMergeTree}
PARTITION BY toYYYYMM(registered_at)
ORDER BY event_id
SETTINGS index_granularity = 1024;
