import type { Registry } from 'prom-client';

// Labelled Prometheus metrics for the busiest paths, whose children count with a field write.
// prom-client's own hash the labels on every inc or observe, and its histogram converts the
// bucket's bound to a property name each time (several µs on the decision route, measured with
// `node bench/run.js decisions --profile DIR`); here a child is looked up once and keeps its counts
// itself. They register with a prom-client registry like any metric, so /metrics prints them in
// the same text format.

export type HistogramChild = { observe(value: number): void };
export type CounterChild = { inc(by?: number): void };

type Child = { labels: Record<string, string>; counts: Float64Array; sum: number; count: number };

export class LabelledHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly L[];
  private readonly bounds: Float64Array;
  private readonly children = new Map<string, Child>();

  constructor(opts: {
    name: string;
    help: string;
    labelNames: readonly L[];
    buckets: readonly number[];
    registers: Registry[];
  }) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    this.bounds = Float64Array.from([...opts.buckets].sort((a, b) => a - b));
    for (const r of opts.registers) r.registerMetric(this as never);
  }

  /** The child for these label values (in labelNames' order); keep it, and observe on it. */
  labels(...values: string[]): HistogramChild {
    if (values.length !== this.labelNames.length)
      throw new TypeError(`${this.name} takes ${this.labelNames.length} label values, got ${values.length}`);
    const key = values.join('\u0000');
    let child = this.children.get(key);
    if (!child) {
      const labels = Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]]));
      child = { labels, counts: new Float64Array(this.bounds.length), sum: 0, count: 0 };
      this.children.set(key, child);
    }
    const c = child;
    const bounds = this.bounds;
    return {
      observe(value: number) {
        if (!Number.isFinite(value)) return;
        c.sum += value;
        c.count++;
        for (let i = 0; i < bounds.length; i++) {
          if (value <= bounds[i]) {
            c.counts[i]++;
            return;
          }
        }
      },
    };
  }

  /** What prom-client's registry asks of a metric: its values, the buckets cumulative. */
  async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const c of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += c.counts[i];
        values.push({
          labels: { le: this.bounds[i], ...c.labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      }
      values.push({ labels: { le: '+Inf', ...c.labels }, value: c.count, metricName: `${this.name}_bucket` });
      values.push({ labels: c.labels, value: c.sum, metricName: `${this.name}_sum` });
      values.push({ labels: c.labels, value: c.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset() {
    for (const c of this.children.values()) {
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
  }
}

/** A labelled Prometheus counter; keep the child `labels` returns, and inc on it. */
export class LabelledCounter<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly labelNames: readonly L[];
  private readonly children = new Map<string, { labels: Record<string, string>; value: number }>();

  constructor(opts: { name: string; help: string; labelNames: readonly L[]; registers: Registry[] }) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    for (const r of opts.registers) r.registerMetric(this as never);
  }

  /** The child for these label values (in labelNames' order). */
  labels(...values: string[]): CounterChild {
    if (values.length !== this.labelNames.length)
      throw new TypeError(`${this.name} takes ${this.labelNames.length} label values, got ${values.length}`);
    const key = values.join('\u0000');
    let child = this.children.get(key);
    if (!child) {
      child = { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]])), value: 0 };
      this.children.set(key, child);
    }
    const c = child;
    return {
      inc(by = 1) {
        if (!(by >= 0) || !Number.isFinite(by)) throw new TypeError(`${by} is not a valid increment`);
        c.value += by;
      },
    };
  }

  async get() {
    const values = [...this.children.values()].map((c) => ({ labels: c.labels, value: c.value }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset() {
    for (const c of this.children.values()) c.value = 0;
  }
}
