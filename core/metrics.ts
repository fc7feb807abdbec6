import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { LabelledCounter, LabelledHistogram } from './labelled-metrics.ts';

// One registry per process (passed around, never global), served as Prometheus text at /metrics.
export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'parley_process_' });
  const r = [registry];
  return {
    registry,
    eventsAccepted: new Counter({
      name: 'parley_ingest_events_accepted_total',
      help: 'Events acknowledged by ingest',
      labelNames: ['source'],
      registers: r,
    }),
    eventsRejected: new Counter({
      name: 'parley_ingest_events_rejected_total',
      help: 'Events rejected by ingest',
      labelNames: ['source'],
      registers: r,
    }),
    ingestUnavailable: new Counter({
      name: 'parley_ingest_bus_unavailable_total',
      help: 'Requests answered 503 because the bus failed',
      registers: r,
    }),
    webhookItemsIgnored: new Counter({
      name: 'parley_webhook_items_ignored_total',
      help: 'Webhook items acknowledged but not used',
      labelNames: ['platform', 'kind'],
      registers: r,
    }),
    processed: new Counter({
      name: 'parley_processor_messages_total',
      help: 'Bus messages processed',
      labelNames: ['processor'],
      registers: r,
    }),
    processorErrors: new Counter({
      name: 'parley_processor_batch_failures_total',
      help: 'Batches that failed and will be retried',
      labelNames: ['processor'],
      registers: r,
    }),
    sinkRows: new Counter({
      name: 'parley_sink_rows_total',
      help: 'Rows inserted into ClickHouse by the sink',
      registers: r,
    }),
    duplicates: new Counter({
      name: 'parley_duplicate_events_total',
      help: 'Later copies of an event_id skipped (the first accepted copy is the event), by stage',
      labelNames: ['stage'],
      registers: r,
    }),
    deadLetters: new Counter({
      name: 'parley_processor_dead_letters_total',
      help: 'Records the store refused, sent to the dead-letter topic instead, by stage',
      labelNames: ['stage'],
      registers: r,
    }),
    segmentChanges: new Counter({
      name: 'parley_segment_membership_changes_total',
      help: 'Segment membership changes stored and published',
      labelNames: ['change'],
      registers: r,
    }),
    lag: new Gauge({
      name: 'parley_processor_lag_messages',
      help: 'Messages not yet committed',
      labelNames: ['group', 'topic'],
      registers: r,
    }),
    decisions: new LabelledCounter({
      name: 'parley_decisions_total',
      help: 'Decisions answered, by outcome (served or none)',
      labelNames: ['outcome'],
      registers: r,
    }),
    decisionRecordsLogged: new Counter({
      name: 'parley_decision_records_logged_total',
      help: 'Decision records published off the answer path, by log (offers, withheld)',
      labelNames: ['log'],
      registers: r,
    }),
    decisionRecordsUnlogged: new Counter({
      name: 'parley_decision_records_unlogged_total',
      help: 'Decision records dropped because the bus could not take them in time, by log (offers, withheld)',
      labelNames: ['log'],
      registers: r,
    }),
    impressions: new Counter({
      name: 'parley_impressions_total',
      help: 'Offer tokens presented as delivered, by path and result (recorded or why refused)',
      labelNames: ['path', 'result'],
      registers: r,
    }),
    decisionsReady: new Gauge({
      name: 'parley_decision_engine_ready',
      help: '1 once this process’s decision engine has caught up with the bus, else 0',
      registers: r,
    }),
    httpDuration: new LabelledHistogram({
      name: 'parley_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
  };
}
