import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LabelledCounter, LabelledHistogram } from './labelled-metrics.ts';

describe('LabelledHistogram', () => {
  it("prints what prom-client's Histogram prints for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const opts = {
      name: 'parley_test_seconds',
      help: 'A test histogram',
      labelNames: ['route', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 1],
    };
    const a = new LabelledHistogram({ ...opts, registers: [ours] });
    const b = new Histogram({ ...opts, labelNames: [...opts.labelNames], registers: [theirs] });
    const values = [0, 0.0005, 0.001, 0.0011, 0.003, 0.0099, 0.5, 2, 7.25];
    for (const [route, status] of [
      ['/v1/decisions', '200'],
      ['/v1/decisions', '204'],
      ['/v1/events', '202'],
    ]) {
      const child = a.labels(route, status);
      for (const v of values) {
        child.observe(v);
        b.labels(route, status).observe(v);
      }
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    ours.resetMetrics();
    theirs.resetMetrics();
    expect(await ours.metrics()).toContain('parley_test_seconds_count{route="/v1/events",status="202"} 0');
  });

  it('refuses the wrong number of label values', () => {
    const h = new LabelledHistogram({
      name: 'parley_test2_seconds',
      help: 'x',
      labelNames: ['a'],
      buckets: [1],
      registers: [],
    });
    expect(() => h.labels('x', 'y')).toThrow(/takes 1 label values, got 2/);
  });
});

describe('LabelledCounter', () => {
  it("prints what prom-client's Counter prints for the same increments", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const opts = { name: 'parley_test_total', help: 'A test counter', labelNames: ['outcome'] as const };
    const a = new LabelledCounter({ ...opts, registers: [ours] });
    const b = new Counter({ ...opts, labelNames: [...opts.labelNames], registers: [theirs] });
    const served = a.labels('served');
    for (let i = 0; i < 5; i++) {
      served.inc();
      b.labels('served').inc();
    }
    a.labels('none').inc(2.5);
    b.labels('none').inc(2.5);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(() => served.inc(-1)).toThrow(/not a valid increment/);
  });
});
