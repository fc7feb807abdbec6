import type { Registry } from 'prom-client';

// Labelled Prometheus metrics for the busiest paths, whose children count with a field write.
// prom-client's own hash the labels on every inc or observe, and its histogram converts the
// bucket's bound to a property name each time (several µs on the decision route, measured with
// `node bench/run.js decisions --profile DIR`); here a child is looked up once and keeps its counts
// itself. They register with a prom-client registry like any metric, so /metrics prints them in
// the same text format.

export type HistogramChild = { observe(value: number): void };
export type CounterChild = { inc(by?: number): void };

type Options<L extends string> = {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: Registry[];
};

/** What both kinds share: a name, label names, and one state per set of label values. */
abstract class Labelled<L extends string, S extends { labels: Record<string, string> }> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum';
  readonly labelNames: readonly L[];
  protected readonly children = new Map<string, S>();

  constructor(opts: Options<L>) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
  }

  protected register(registers: Registry[]) {
    for (const r of registers) r.registerMetric(this as never);
  }

  /** The state of these label values (in labelNames' order), made on first use. */
  protected child(values: string[], make: (labels: Record<string, string>) => S): S {
    if (values.length !== this.labelNames.length)
      throw new TypeError(`${this.name} takes ${this.labelNames.length} label values, got ${values.length}`);
    const key = values.join('\u0000');
    let child = this.children.get(key);
    if (!child) {
      child = make(Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]])));
      this.children.set(key, child);
    }
    return child;
  }
}

type Buckets = { labels: Record<string, string>; counts: Float64Array; sum: number; count: number };

export class LabelledHistogram<L extends string> extends Labelled<L, Buckets> {
  readonly type = 'histogram';
  private readonly bounds: Float64Array;

  constructor(opts: Options<L> & { buckets: readonly number[] }) {
    super(opts);
    this.bounds = Float64Array.from([...opts.buckets].sort((a, b) => a - b));
    this.register(opts.registers);
  }

  /** The child for these label values (in labelNames' order); keep it, and observe on it. */
  labels(...values: string[]): HistogramChild {
    const bounds = this.bounds;
    const c = this.child(values, (labels) => ({
      labels,
      counts: new Float64Array(bounds.length),
      sum: 0,
      count: 0,
    }));
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
export class LabelledCounter<L extends string> extends Labelled<
  L,
  { labels: Record<string, string>; value: number }
> {
  readonly type = 'counter';

  constructor(opts: Options<L>) {
    super(opts);
    this.register(opts.registers);
  }

  /** The child for these label values (in labelNames' order). */
  labels(...values: string[]): CounterChild {
    const c = this.child(values, (labels) => ({ labels, value: 0 }));
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
