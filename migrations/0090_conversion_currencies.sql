-- The currency of every conversion (lead.submitted, appointment.booked, order.placed), kept as
-- the events table stores them: reports at the default windows read attributed conversions from
-- the stored credits, which do not keep the currency, and found each one's currency by reading
-- the id and props of every conversion in the events table (the most costly part of the
-- attribution and campaign reports). Filled from every insert into events by a materialized view,
-- and from the events stored before it here. Copies of an event are the same row, so repeated
-- rows change nothing (readers take any row of an event_id). user_id makes an erasure remove a
-- person's rows here too. The types and the currency expression are those of the reports (a test
-- keeps them equal).
CREATE TABLE IF NOT EXISTS ${DB}.conversion_currencies ${ON_CLUSTER} (
  event_id String,
  type LowCardinality(String),
  occurred_at DateTime64(3, 'UTC'),
  business_id String,
  user_id String,
  currency LowCardinality(String)
) ENGINE = ${ENGINE:ReplacingMergeTree}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (event_id, business_id, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS ${DB}.conversion_currencies_mv ${ON_CLUSTER}
TO ${DB}.conversion_currencies AS
SELECT event_id, type, occurred_at, business_id, user_id,
  if(trimBoth(JSONExtractString(props, 'currency')) = '', 'XXX', upperUTF8(trimBoth(JSONExtractString(props, 'currency')))) AS currency
FROM ${DB}.events
WHERE type IN ('lead.submitted', 'appointment.booked', 'order.placed');

INSERT INTO ${DB}.conversion_currencies (event_id, type, occurred_at, business_id, user_id, currency)
SELECT event_id, type, occurred_at, business_id, user_id,
  if(trimBoth(JSONExtractString(props, 'currency')) = '', 'XXX', upperUTF8(trimBoth(JSONExtractString(props, 'currency')))) AS currency
FROM ${DB}.events
WHERE type IN ('lead.submitted', 'appointment.booked', 'order.placed');
