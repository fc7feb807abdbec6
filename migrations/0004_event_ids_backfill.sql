-- Registers the events stored before event_ids existed, so their later copies are known as
-- duplicates. Their bus positions are not known: partition 4294967295 matches no copy, so every
-- copy read from now on counts as a later one (these events are stored already).
INSERT INTO ${DB}.event_ids (event_id, bus_partition, bus_offset, accepted_at)
SELECT event_id, 4294967295, 0, min(ingested_at) FROM ${DB}.events GROUP BY event_id;
