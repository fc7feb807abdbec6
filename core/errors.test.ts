import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ERRORS } from './errors.ts';

// The registry is what the OpenAPI document lists: a code there that no code raises is a promise
// the API does not keep.
const ROOT = join(import.meta.dirname, '..');
const SOURCES = ['api', 'bin', 'core', 'dev', 'ingest', 'processors'];

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(path)));
    else if (/\.tsx?$/.test(e.name) && !e.name.endsWith('.test.ts') && path !== join(ROOT, 'core/errors.ts'))
      out.push(path);
  }
  return out;
}

it('every error code in the registry is raised somewhere', async () => {
  const files = (await Promise.all(SOURCES.map((d) => sources(join(ROOT, d))))).flat();
  const text = (await Promise.all(files.map((f) => readFile(f, 'utf8')))).join('\n');
  const unraised = Object.keys(ERRORS).filter((code) => !new RegExp(`'${code}'`).test(text));
  expect(unraised).toEqual([]);
});
