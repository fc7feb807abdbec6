import { describe, expect, it } from 'vitest';
import {
  ClickHouseException,
  contentType,
  effectiveFormat,
  exceptionText,
  httpStatus,
  planRequest,
  rawInsert,
  returnsRows,
  sqlString,
  streamedException,
  toException,
} from './protocol.ts';

const plan = (qs: string, body = '', method = 'POST') =>
  planRequest({ method, params: new URLSearchParams(qs), body, queryId: 'q1' });

describe('planRequest', () => {
  it('turns URL parameters into settings, bound parameters and a database, as ClickHouse reads them', () => {
    const p = plan(
      'query_id=q1&database=parley&default_format=JSONEachRow&max_threads=2&param_name=it%5C%27s&wait_end_of_query=1&enable_http_compression=1',
      'SELECT {name:String}',
    );
    expect(p.prelude).toEqual([
      'SET implicit_select = 0',
      "SET max_threads = '2'",
      "SET param_name = 'it\\\\\\'s'",
      'USE `parley`',
    ]);
    expect(p.sql).toBe('SELECT {name:String}');
    expect(p.format).toBe('JSONEachRow');
    expect(p.waitEnd).toBe(true);
    expect(p.compress).toBe(true);
  });

  it('joins the query parameter and the body with a newline (inserts carry their data in the body)', () => {
    expect(plan('query=INSERT+INTO+t+FORMAT+JSONEachRow', '{"a":1}\n').sql).toBe(
      'INSERT INTO t FORMAT JSONEachRow\n{"a":1}\n',
    );
    expect(plan('query=SELECT+1').sql).toBe('SELECT 1');
    expect(plan('', 'SELECT 1').format).toBe('TabSeparated');
  });

  it('makes GET queries read-only and takes multipart fields', () => {
    expect(plan('query=SELECT+1', '', 'GET').prelude).toEqual([
      'SET implicit_select = 0',
      'SET readonly = 2',
    ]);
    const p = planRequest({
      method: 'POST',
      params: new URLSearchParams(''),
      form: new Map([
        ['query', 'SELECT {x:UInt8}'],
        ['param_x', '7'],
      ]),
      body: '',
      queryId: 'q',
    });
    expect(p.sql).toBe('SELECT {x:UInt8}');
    expect(p.prelude).toEqual(['SET implicit_select = 0', "SET param_x = '7'"]);
  });

  it('refuses what it cannot do safely, with the code ClickHouse uses', () => {
    expect(() => plan('')).toThrow(expect.objectContaining({ code: 62, type: 'SYNTAX_ERROR' }));
    expect(() => plan('bad-name=1', 'SELECT 1')).toThrow(expect.objectContaining({ code: 115 }));
    expect(() => plan('param_a%27b=1', 'SELECT 1')).toThrow(expect.objectContaining({ code: 457 }));
    expect(() => plan('decompress=1', 'SELECT 1')).toThrow(expect.objectContaining({ code: 48 }));
  });

  it('quotes values so that the engine sees exactly the text that was sent', () => {
    expect(sqlString("a'b\\c")).toBe("'a\\'b\\\\c'");
    expect(sqlString("x'; DROP TABLE t; --")).toBe("'x\\'; DROP TABLE t; --'");
  });
});

describe('statements', () => {
  it('tells row-returning statements from the others', () => {
    for (const q of [
      'SELECT 1',
      '  with x as (select 1) select * from x',
      '-- c\n(SELECT 1)',
      'SHOW TABLES',
      'DESCRIBE t',
      'EXISTS t',
    ])
      expect(returnsRows(q), q).toBe(true);
    for (const q of [
      'INSERT INTO t SELECT 1',
      'CREATE TABLE t (a UInt8) ENGINE = Memory',
      'ALTER TABLE t DELETE WHERE 1',
      'OPTIMIZE TABLE t FINAL',
    ])
      expect(returnsRows(q), q).toBe(false);
  });

  it('finds the format a FORMAT clause asks for', () => {
    expect(effectiveFormat('SELECT 1 FORMAT CSV', 'JSON')).toBe('CSV');
    expect(effectiveFormat('SELECT 1 FORMAT JSONEachRow;', 'JSON')).toBe('JSONEachRow');
    expect(effectiveFormat('SELECT 1', 'JSON')).toBe('JSON');
    expect(effectiveFormat('INSERT INTO t FORMAT CSV\n1,2', 'TabSeparated')).toBe('TabSeparated');
  });

  it('recognises inserts whose data can go to the engine as raw bytes', () => {
    expect(rawInsert('INSERT INTO parley.events FORMAT JSONEachRow\n{"a":1}\n')).toEqual({
      table: 'parley.events',
      columns: undefined,
      format: 'JSONEachRow',
      data: '{"a":1}\n',
    });
    expect(rawInsert('INSERT INTO t (a, `b`) FORMAT CSV\n1,2')).toEqual({
      table: 't',
      columns: ['a', 'b'],
      format: 'CSV',
      data: '1,2',
    });
    expect(rawInsert('INSERT INTO t FORMAT Values\n(1)')).toBeUndefined();
    expect(rawInsert('INSERT INTO t SELECT 1')).toBeUndefined();
    expect(rawInsert('INSERT INTO t (* EXCEPT (a)) FORMAT JSONEachRow\n{}')).toBeUndefined();
  });
});

describe('errors', () => {
  it('keeps the code, type and message of an engine error', () => {
    const e = toException(
      new Error(
        "Code: 60. DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE)",
      ),
    );
    expect(e).toMatchObject({
      code: 60,
      type: 'UNKNOWN_TABLE',
      message: "Unknown table expression identifier 'x' in scope SELECT * FROM x",
    });
    expect(exceptionText(e, '26.7.2.1')).toBe(
      "Code: 60. DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE) (version 26.7.2.1)",
    );
    const multi = toException(
      new Error(
        'Code: 27. DB::Exception: Cannot parse input: (at row 1)\n: While executing ParallelParsingBlockInputFormat. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)',
      ),
    );
    expect(multi.code).toBe(27);
    expect(multi.type).toBe('CANNOT_PARSE_INPUT_ASSERTION_FAILED');
    expect(toException(new Error('boom'))).toMatchObject({
      code: 1001,
      type: 'STD_EXCEPTION',
      message: 'boom',
    });
  });

  it("maps exceptions to ClickHouse's HTTP statuses", () => {
    const s = (type: string) => httpStatus(new ClickHouseException(1, type, ''));
    expect(s('SYNTAX_ERROR')).toBe(400);
    expect(s('UNKNOWN_TABLE')).toBe(404);
    expect(s('UNKNOWN_DATABASE')).toBe(404);
    expect(s('AUTHENTICATION_FAILED')).toBe(403);
    expect(s('REQUIRED_PASSWORD')).toBe(401);
    expect(s('READONLY')).toBe(500);
    expect(s('NOT_IMPLEMENTED')).toBe(501);
  });

  it('frames a mid-stream exception the way the client finds it', () => {
    const text = 'Code: 395. DB::Exception: boom. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) (version 1)';
    const tail = streamedException(text, 'TAG').toString();
    expect(tail.startsWith('\r\n__exception__\r\nTAG\r\n')).toBe(true);
    expect(tail.endsWith(`${Buffer.byteLength(text) + 1} TAG\r\n__exception__\r\n`)).toBe(true);
  });

  it('names the content type of a format', () => {
    expect(contentType('JSONEachRow')).toMatch(/ndjson/);
    expect(contentType('JSON')).toMatch(/application\/json/);
    expect(contentType('CSVWithNames')).toMatch(/text\/csv/);
    expect(contentType('ArrowStream')).toBe('application/octet-stream');
  });
});
