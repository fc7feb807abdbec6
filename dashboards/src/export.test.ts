import { tableFromIPC } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { toArrow } from './arrow.ts';
import { type Column, fileName, toCsv } from './export.ts';

type Row = { name: string | null; users: number | null };
const columns: Column<Row>[] = [
  { key: 'name', label: 'Name' },
  { key: 'users', label: 'Users', kind: 'number' },
];
const rows: Row[] = [
  { name: 'a,"b"', users: 3 },
  { name: '=1+1', users: null },
  { name: null, users: 0.5 },
  { name: 'é\nx', users: 7 },
];

describe('exports', () => {
  it('write RFC 4180 CSV with the column keys as header, formulas kept as text', () => {
    expect(toCsv(columns, rows)).toBe('name,users\r\n"a,""b""",3\r\n\'=1+1,\r\n,0.5\r\n"é\nx",7\r\n');
  });

  it('write an Arrow stream with the same rows, numbers as Float64 and nulls kept', () => {
    const t = tableFromIPC(toArrow(columns, rows));
    expect(t.schema.fields.map((f) => [f.name, String(f.type)])).toEqual([
      ['name', 'Utf8'],
      ['users', 'Float64'],
    ]);
    expect(t.toArray().map((r) => r.toJSON())).toEqual([
      { name: 'a,"b"', users: 3 },
      { name: '=1+1', users: null },
      { name: null, users: 0.5 },
      { name: 'é\nx', users: 7 },
    ]);
  });

  it('name files after what they hold', () => {
    expect(fileName('funnel', undefined, '2026-11-01', '2026-11-30', 'channel')).toBe(
      'parley-funnel-2026-11-01-2026-11-30-channel',
    );
    expect(fileName('events', 'biz a/b')).toBe('parley-events-biz_a_b');
  });
});
