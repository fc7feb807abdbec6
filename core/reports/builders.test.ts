import { describe, expect, it } from 'vitest';
import {
  attributionModelsRequestSchema,
  attributionRequestSchema,
  buildAttributionModelsQuery,
  buildAttributionQuery,
  weightsSql,
} from './attribution.ts';
import { buildCampaignsQuery, campaignsQuerySchema } from './campaigns.ts';
import { buildStoredAttributionModelsQuery, buildStoredAttributionQuery } from './credits.ts';
import { buildFunnelQuery, funnelRequestSchema } from './funnel.ts';
import { MODELS, modelWeights } from './models.ts';
import { compileWhere, matchWhere, whereSchema } from './where.ts';

const range = { from: '2026-03-01T00:00:00Z', to: '2026-03-02T00:00:00Z' };
const EVIL = "x'); DROP TABLE parley.events; --";

describe('where', () => {
  it('binds every value and prop name, and rejects fields outside channel and props.<name>', () => {
    const w = whereSchema.parse({
      channel: { in: ['sms', EVIL] },
      'props.value': { gte: 10, lt: 20 },
      'props.keywords': EVIL,
      'props.ok': true,
      'props.gone': null,
    });
    const { sql, params } = compileWhere(w, 'p');
    expect(sql).not.toContain(EVIL);
    expect(Object.values(params).flat()).toContain(EVIL);
    expect(sql).toContain('{p_1_0:Float64}');
    expect(whereSchema.safeParse({ user_id: 'u1' }).success).toBe(false);
    expect(whereSchema.safeParse({ 'props.a.b': 1 }).success).toBe(false);
    expect(whereSchema.safeParse({ 'props.a-b': 1 }).success).toBe(true); // as in segment rules
    expect(whereSchema.safeParse({ 'props.a': { between: 1 } }).success).toBe(false);
  });

  it('matches in memory the way the SQL does', () => {
    const e = { channel: 'sms', props: { value: 15, keywords: ['cut', 'beard'], ok: true } };
    expect(matchWhere({ channel: 'sms', 'props.value': { gte: 10, lt: 20 } }, e)).toBe(true);
    expect(matchWhere({ 'props.value': { gt: 15 } }, e)).toBe(false);
    expect(matchWhere({ 'props.keywords': { in: ['beard'] } }, e)).toBe(true);
    expect(matchWhere({ 'props.ok': true, 'props.missing': null }, e)).toBe(true);
    expect(matchWhere({ 'props.value': '15' }, e)).toBe(false);
  });
});

describe('report statements', () => {
  it('funnel: one statement, request values only as parameters', () => {
    const r = funnelRequestSchema.parse({
      steps: [{ type: 'message.received', where: { 'props.ref': EVIL } }, { type: 'order.placed' }],
      window_seconds: 60,
      ...range,
      business_id: EVIL,
      exclusions: [{ type: 'conversation.blocked', between: [1, 2] }],
    });
    const { query, query_params } = buildFunnelQuery('parley', r, [EVIL]);
    expect(query).not.toContain(EVIL);
    // Without FINAL: repeated copies of an event cannot change a path (test/reports-funnel.test.ts).
    expect(query).toContain('FROM parley.events\n');
    expect(query).not.toContain('FINAL');
    expect(query.split(';').length).toBe(1);
    expect(query_params).toMatchObject({
      business_id: EVIL,
      businesses: [EVIL],
      window: 60_000,
      s1_t: 'order.placed',
    });
  });

  it('attribution, stored credits and campaigns: request values only as parameters', () => {
    for (const model of MODELS) {
      const r = attributionRequestSchema.parse({ model, ...range, business_id: EVIL });
      for (const q of [
        buildAttributionQuery('parley', r),
        buildStoredAttributionQuery('parley', r),
        buildCampaignsQuery('parley', campaignsQuerySchema.parse({ ...range, model, business_id: EVIL })),
      ]) {
        expect(q.query).not.toContain(EVIL);
        expect(q.query_params.business_id).toBe(EVIL);
      }
    }
    expect(attributionRequestSchema.safeParse({ model: 'u_shaped', ...range }).success).toBe(false);
    const backwards = attributionRequestSchema.parse({ model: 'linear', from: range.to, to: range.from });
    expect(() => buildStoredAttributionQuery('parley', backwards)).toThrow(/before/);
    expect(() => buildAttributionQuery('parley', backwards)).toThrow(/before/);
    expect(attributionRequestSchema.parse({ model: 'linear', ...range }).click_window_seconds).toBe(604_800);
    expect(weightsSql('time_decay')).toContain('{half_life:Float64}');
  });

  it('several models: request values only as parameters; models distinct names of models', () => {
    const r = attributionModelsRequestSchema.parse({ ...range, business_id: EVIL });
    expect(r.models).toEqual([...MODELS]);
    for (const q of [
      buildAttributionModelsQuery('parley', r),
      buildStoredAttributionModelsQuery('parley', r),
      buildCampaignsQuery('parley', campaignsQuerySchema.parse({ ...range, business_id: EVIL }), undefined, {
        storedCredits: true,
      }),
    ]) {
      expect(q.query).not.toContain(EVIL);
      expect(q.query_params.business_id).toBe(EVIL);
    }
    // Every model's weights in the one statement; the stored credits bind the models.
    const all = buildAttributionModelsQuery('parley', r).query;
    for (const m of MODELS) expect(all).toContain(`'${m}'`);
    expect(buildStoredAttributionModelsQuery('parley', r).query_params.models).toEqual([...MODELS]);
    for (const models of [['linear', 'linear'], [], ['u_shaped']])
      expect(attributionModelsRequestSchema.safeParse({ ...range, models }).success).toBe(false);
    const dup = { ...r, models: ['linear', 'linear'] as typeof r.models };
    expect(() => buildAttributionModelsQuery('parley', dup)).toThrow(/distinct/);
  });
});

describe('model weights', () => {
  it('split one conversion: 1, 2 and 5 touchpoints', () => {
    expect(modelWeights('position_based', [0], 1)).toEqual([1]);
    expect(modelWeights('position_based', [2, 1], 1)).toEqual([0.5, 0.5]);
    expect(modelWeights('position_based', [5, 4, 3, 2, 1], 1).map((w) => +w.toFixed(6))).toEqual([
      0.4, 0.066667, 0.066667, 0.066667, 0.4,
    ]);
    expect(modelWeights('time_decay', [2000, 1000], 1)).toEqual([1 / 3, 2 / 3]);
    // Very old touches do not underflow to 0/0: weights are relative to the youngest.
    expect(modelWeights('time_decay', [1e15, 1e15], 1)).toEqual([0.5, 0.5]);
    expect(modelWeights('last_touch', [3, 2, 1], 1)).toEqual([0, 0, 1]);
    expect(modelWeights('first_touch', [3, 2, 1], 1)).toEqual([1, 0, 0]);
  });
});
