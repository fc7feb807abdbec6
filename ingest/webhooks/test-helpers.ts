// Shared by the webhook tests: fixtures, a context, and a delivery runner.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AdapterContext, Platform } from './common.ts';
import { processDelivery } from './route.ts';

export const FIXTURES = join(import.meta.dirname, 'fixtures');
export const fixtureNames = () =>
  readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.json'))
    .sort();
export const fixtureText = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');
export const fixture = (name: string) => JSON.parse(fixtureText(name)) as Record<string, unknown>;
export const platformOf = (name: string) => name.split('-')[0] as Platform;

export const HASH_SECRET = 'test-hash-secret-0123456789abcdef';
export const ctx: AdapterContext = {
  businessMap: { '104512345678901': 'biz_barber_42' },
  hashSecret: HASH_SECRET,
};
export const normalize = { maxFutureMs: 300_000, keywords: ['haircut', 'saturday', 'offer'] };
export const NOW = Date.parse('2026-01-01T00:00:00Z');

export const deliver = (platform: Platform, body: unknown, c: AdapterContext = ctx) =>
  processDelivery(platform, body, c, normalize, NOW);
