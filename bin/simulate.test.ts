import { describe, expect, it } from 'vitest';
import { formatSummary, parseSimulateArgs, type SimulateResult } from './simulate.ts';

describe('parseSimulateArgs', () => {
  it('has defaults that reach a local Parley, with the key from the environment', () => {
    const o = parseSimulateArgs([], { PARLEY_API_KEY: 'k1' });
    expect(o).toMatchObject({
      url: 'http://127.0.0.1:8080',
      key: 'k1',
      businesses: 20,
      users: 2000,
      days: 7,
      concurrency: 4,
    });
    expect(o.rate).toBeUndefined();
    expect(o.seed).toMatch(/^\d+$/);
    expect(parseSimulateArgs([], { PARLEY_ADMIN_KEY: 'k2' }).key).toBe('k2');
  });

  it('takes the address from PARLEY_HOST/PARLEY_PORT, and flags over the environment', () => {
    expect(
      parseSimulateArgs([], { PARLEY_API_KEY: 'k', PARLEY_PORT: '9001', PARLEY_HOST: '0.0.0.0' }).url,
    ).toBe('http://127.0.0.1:9001');
    expect(parseSimulateArgs([], { PARLEY_API_KEY: 'k', PARLEY_HOST: '::1' }).url).toBe('http://[::1]:8080');
    const o = parseSimulateArgs(
      [
        '--url',
        'http://parley:80',
        '--key',
        'flag',
        '--users',
        '50',
        '--businesses',
        '3',
        '--days',
        '1.5',
        '--seed',
        's',
        '--concurrency',
        '2',
        '--rate',
        '100',
      ],
      { PARLEY_API_KEY: 'env' },
    );
    expect(o).toEqual({
      url: 'http://parley:80',
      key: 'flag',
      users: 50,
      businesses: 3,
      days: 1.5,
      seed: 's',
      concurrency: 2,
      rate: 100,
    });
  });

  it('refuses bad options with a message and the usage', () => {
    expect(() => parseSimulateArgs([], {})).toThrow(
      /an API key is needed: pass --key KEY or set PARLEY_API_KEY/,
    );
    expect(() => parseSimulateArgs(['--users', '0'], { PARLEY_API_KEY: 'k' })).toThrow(
      /--users must be a positive whole number, not "0"/,
    );
    expect(() => parseSimulateArgs(['--users', '2.5'], { PARLEY_API_KEY: 'k' })).toThrow(
      /--users must be a positive whole number/,
    );
    expect(() => parseSimulateArgs(['--rate', 'fast'], { PARLEY_API_KEY: 'k' })).toThrow(
      /--rate must be a positive number, not "fast"/,
    );
    expect(() => parseSimulateArgs(['--url', 'nope'], { PARLEY_API_KEY: 'k' })).toThrow(
      /--url must be a URL/,
    );
    expect(() => parseSimulateArgs(['--color'], { PARLEY_API_KEY: 'k' })).toThrow(
      /Unknown option '--color'[\s\S]*Usage: parley simulate/,
    );
  });
});

describe('formatSummary', () => {
  it('lists events by type, the population, conversions with their value, and the outcome', () => {
    const r: SimulateResult = {
      events: 1500,
      byType: { 'message.received': 1000, 'order.placed': 20, 'lead.submitted': 480 },
      users: 300,
      businesses: 4,
      conversions: {
        count: 500,
        byType: { 'order.placed': 20, 'lead.submitted': 480 },
        value: { EUR: 1234.5, USD: 99 },
      },
      seed: '42',
      days: 7,
      accepted: 1499,
      rejected: 1,
      retries: 2,
      samples: [{ event_id: 'e1', error: 'occurred_at: too far ahead' }],
      elapsedMs: 500,
    };
    const text = formatSummary(r);
    expect(text.split('\n')[0]).toBe('Simulated 7 days of traffic (seed 42)');
    expect(text).toContain('  message.received  1,000\n');
    expect(text).toContain('  total events      1,500\n');
    expect(text).toContain('  conversions       500 (order.placed 20, lead.submitted 480)\n');
    expect(text).toContain('  conversion value  EUR 1,234.50 · USD 99.00\n');
    expect(text).toContain('  accepted          1,499\n');
    expect(text).toContain('  rejected              1\n');
    expect(text).toContain('  events/s          2,998\n');
    expect(text).toContain('  rejected e1: occurred_at: too far ahead');
  });
});
