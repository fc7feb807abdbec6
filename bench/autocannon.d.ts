// The part of autocannon's API the benchmarks use (the package ships no types).
declare module 'autocannon' {
  namespace autocannon {
    type Request = {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string;
      setupRequest?: (req: Request, context: Record<string, unknown>) => Request;
    };
    type Options = {
      url: string;
      connections?: number;
      duration?: number;
      /** Requests per second over all connections (default: as fast as they are answered). */
      overallRate?: number;
      requests?: Request[];
    };
    type Histogram = { average: number; p50: number; p90: number; p99: number; max: number; total: number };
    type Result = { requests: Histogram; latency: Histogram; non2xx: number; errors: number };
  }
  function autocannon(opts: autocannon.Options): Promise<autocannon.Result>;
  export default autocannon;
}
