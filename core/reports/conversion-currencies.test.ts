import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONVERSION_TYPES } from '../events/schema.ts';
import { CURRENCY_SQL } from './attribution.ts';

// conversion_currencies (migration 0090) copies the conversions' currencies out of the events
// table for the reports on stored credits; the SQL path reads them from the events. Both must
// mean the same conversions and the same currency, so the migration's text is checked against
// the constants the SQL path uses.

const sql = readFileSync(new URL('../../migrations/0090_conversion_currencies.sql', import.meta.url), 'utf8');
const statements = sql.replace(/^\s*--.*$/gm, '').split(/;\s*$/m);

describe('migration 0090 (conversion currencies)', () => {
  it('the view and the backfill take every conversion type and no other', () => {
    const lists = [...sql.matchAll(/WHERE type IN \(([^)]*)\)/g)].map((m) =>
      m[1].split(',').map((t) => t.trim().replace(/^'|'$/g, '')),
    );
    expect(lists).toHaveLength(2);
    for (const l of lists) expect([...l].sort()).toEqual([...CONVERSION_TYPES].sort());
  });

  it('the view and the backfill compute the currency as the reports do', () => {
    const filling = statements.filter((s) => /FROM \$\{DB\}\.events/.test(s));
    expect(filling).toHaveLength(2);
    for (const s of filling) expect(s).toContain(`${CURRENCY_SQL} AS currency`);
  });
});
