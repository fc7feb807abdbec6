// Attribution math shared by the in-memory reference and the attribution processor
// (docs/reports.md). The SQL path computes the same in ClickHouse (attribution.ts).

export const MODELS = ['last_touch', 'first_touch', 'linear', 'time_decay', 'position_based'] as const;
export type Model = (typeof MODELS)[number];

export type Windows = {
  click_window_seconds: number;
  view_window_seconds: number;
  half_life_seconds: number;
};
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export type Touch = { event_id: string; t: number; campaign_id: string; click: boolean };

/** Shares of one conversion over touchpoints sorted by time (each entry: ms before conversion). */
export function modelWeights(model: Model, agesMs: number[], halfLifeSeconds: number): number[] {
  const n = agesMs.length;
  switch (model) {
    case 'last_touch':
      return agesMs.map((_, i) => (i === n - 1 ? 1 : 0));
    case 'first_touch':
      return agesMs.map((_, i) => (i === 0 ? 1 : 0));
    case 'linear':
      return agesMs.map(() => 1 / n);
    case 'time_decay': {
      // Relative to the youngest touch, so the largest weight is 1 and nothing underflows to 0/0.
      const youngest = Math.min(...agesMs);
      const raw = agesMs.map((a) => 2 ** (-(a - youngest) / 1000 / halfLifeSeconds));
      const sum = raw.reduce((s, x) => s + x, 0);
      return raw.map((x) => x / sum);
    }
    case 'position_based':
      if (n === 1) return [1];
      if (n === 2) return [0.5, 0.5];
      return agesMs.map((_, i) => (i === 0 || i === n - 1 ? 0.4 : 0.2 / (n - 2)));
  }
}

/**
 * The touchpoints that count for a conversion at tc among one user's touches in its business:
 * clicks in [tc − click window, tc) if any, else views in [tc − view window, tc); sorted by
 * time, equal times by campaign id (then event id, which cannot change a campaign's share). `considered` is every touch in either window (for re-crediting).
 */
export function touchpointsFor(tc: number, touches: Touch[], w: Windows) {
  const byId = new Map(touches.map((x) => [x.event_id, x]));
  const all = [...byId.values()].filter(
    (x) => x.t < tc && x.t >= tc - (x.click ? w.click_window_seconds : w.view_window_seconds) * 1000,
  );
  const clicks = all.filter((x) => x.click);
  const chosen = (clicks.length ? clicks : all).sort(
    (a, b) => a.t - b.t || cmp(a.campaign_id, b.campaign_id) || cmp(a.event_id, b.event_id),
  );
  return { chosen, considered: all };
}

/** One conversion's split: [campaign_id, weight] per chosen touch, or [['', 1]] when none. */
export function splitConversion(
  model: Model,
  tc: number,
  chosen: Touch[],
  halfLifeSeconds: number,
): [string, number][] {
  if (!chosen.length) return [['', 1]];
  const w = modelWeights(
    model,
    chosen.map((x) => tc - x.t),
    halfLifeSeconds,
  );
  return chosen.map((x, i) => [x.campaign_id, w[i]]);
}
