import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../core/config.ts';

// docker-compose.yml cannot run here (no Docker engine), so it is checked the way
// `docker compose config` checks it: compose-go (scripts/compose-validate, pinned in its go.mod)
// loads it against the Compose specification, resolves variables from .env and checks references.

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../', import.meta.url));

type Service = {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test?: string[] };
  deploy?: { replicas?: number };
  depends_on?: Record<string, { condition: string }>;
  volumes?: { source: string; target: string }[];
};
type Project = { services: Record<string, Service>; volumes: Record<string, unknown> };

let work: string;
let validator: string;

async function validate(
  compose: string,
  env?: string,
): Promise<{ ok: true; project: Project } | { ok: false; error: string }> {
  const dir = await mkdtemp(join(work, 'case-'));
  await writeFile(join(dir, 'docker-compose.yml'), compose);
  if (env !== undefined) await writeFile(join(dir, '.env'), env);
  // Only PATH from this environment, so that a variable set here cannot stand in for .env.
  try {
    const { stdout } = await run(validator, [join(dir, 'docker-compose.yml')], {
      env: { PATH: process.env.PATH ?? '' },
      maxBuffer: 16 << 20,
    });
    return { ok: true, project: JSON.parse(stdout) as Project };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    expect(e.code).toBe(1);
    return { ok: false, error: e.stderr ?? '' };
  }
}

let compose: string;
let envExample: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'parley-compose-'));
  validator = join(work, 'compose-validate');
  // The first build fetches compose-go through the Go module proxy; later ones use the cache.
  await run('go', ['build', '-o', validator, '.'], {
    cwd: join(ROOT, 'scripts/compose-validate'),
    timeout: 280_000,
  });
  compose = await readFile(join(ROOT, 'docker-compose.yml'), 'utf8');
  envExample = await readFile(join(ROOT, '.env.example'), 'utf8');
  await copyFile(join(ROOT, 'Dockerfile'), join(work, 'Dockerfile'));
}, 300_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('docker-compose.yml', () => {
  it('is a valid Compose project with the .env the example describes', async () => {
    const r = await validate(compose, envExample);
    if (!r.ok) throw new Error(r.error);
    expect(Object.keys(r.project.services).sort()).toEqual([
      'api',
      'clickhouse',
      'ingest',
      'kafka',
      'processors',
    ]);
  });

  it('pins its images and runs each role from the Parley image, scaled as the topology says', async () => {
    const r = await validate(compose, envExample);
    if (!r.ok) throw new Error(r.error);
    const s = r.project.services;
    expect(s.kafka?.image).toMatch(/^apache\/kafka:4\.\d+\.\d+$/);
    expect(s.clickhouse?.image).toMatch(/^clickhouse\/clickhouse-server:\d+\.\d+\.\d+\.\d+$/);
    expect(s.ingest?.command).toEqual(['start', '--role', 'ingest']);
    expect(s.processors?.command).toEqual(['start', '--role', 'processors']);
    expect(s.api?.command).toEqual(['start', '--role', 'api']);
    expect(s.ingest?.deploy?.replicas).toBe(2);
    expect(s.processors?.deploy?.replicas).toBe(2);
    // Both processors instances run every processor, segments included (they split the partitions).
    expect(s.processors?.environment?.PARLEY_SEGMENTS_PROCESSOR ?? 'on').toBe('on');
    for (const name of ['kafka', 'clickhouse', 'ingest', 'processors', 'api'])
      expect(s[name]?.healthcheck?.test?.length, name).toBeGreaterThan(1);
    for (const name of ['kafka', 'clickhouse'])
      expect(
        s[name]?.volumes?.some((v) => v.source in r.project.volumes),
        name,
      ).toBe(true);
  });

  it("gives every role an environment Parley's own config accepts, in distributed mode", async () => {
    const r = await validate(compose, envExample);
    if (!r.ok) throw new Error(r.error);
    for (const name of ['ingest', 'processors', 'api']) {
      const svc = r.project.services[name] as Service;
      expect(svc.healthcheck?.test?.join(' ')).toContain('/healthz');
      expect(svc.depends_on?.kafka?.condition).toBe('service_healthy');
      expect(svc.depends_on?.clickhouse?.condition).toBe('service_healthy');
      const config = parseConfig(svc.environment ?? {});
      expect(config.kafka?.brokers).toEqual(['kafka:9092']);
      expect(new URL(config.clickhouse.url ?? '').host).toBe('clickhouse:8123');
      expect(config.apiKeys?.length).toBeGreaterThan(0);
      expect(config.host).toBe('0.0.0.0');
    }
  });

  it('keeps secrets out of the file: without .env it is refused', async () => {
    const r = await validate(compose);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/required variable (PARLEY_API_KEYS|CLICKHOUSE_PASSWORD) is missing/);
  });

  it('rejects broken copies', async () => {
    const broken: [string, string, RegExp][] = [
      [
        'unknown key',
        compose
          .replace('    stop_grace_period: 30s', '    stop_grace_periodd: 30s')
          .replace('  stop_grace_period: 30s', '  stop_grace_periodd: 30s'),
        /stop_grace_periodd/,
      ],
      ['undeclared volume', compose.replace(/^ {2}kafka-data:\n/m, ''), /kafka-data/],
      [
        'unknown dependency',
        compose.replace(
          '    kafka:\n      condition: service_healthy',
          '    kafka-broker:\n      condition: service_healthy',
        ),
        /kafka-broker/,
      ],
      ['bad YAML', compose.replace('  api:\n', '  api:\n   bad indentation: [\n'), /yaml|mapping|flow/i],
      ['wrong type', compose.replace('      replicas: 2', '      replicas: two'), /replicas/],
    ];
    for (const [what, text, reason] of broken) {
      expect(text, what).not.toBe(compose);
      const r = await validate(text, envExample);
      expect(r.ok, what).toBe(false);
      if (!r.ok) expect(r.error, what).toMatch(reason);
    }
  });
});

describe('Dockerfile', () => {
  it('compiles in a build stage and runs the JavaScript on a pinned Node 20 with production dependencies only', async () => {
    const dockerfile = await readFile(join(work, 'Dockerfile'), 'utf8');
    const [build, runtime] = dockerfile.split(/^FROM /m).slice(1);
    expect(build).toMatch(/^node:20\.\d+\.\d+-bookworm-slim AS build$/m);
    expect(build).toMatch(/^RUN npm run build( && node bin\/dashboards.js --force)?$/m);
    expect(runtime).toMatch(/^COPY --from=build .*\/app\/dashboards\/dist dashboards\/dist$/m);
    expect(runtime).toMatch(/^node:20\.\d+\.\d+-bookworm-slim$/m);
    expect(runtime).toMatch(/npm ci --omit=dev/);
    expect(runtime).toMatch(/^COPY --from=build .*\/app\/dist \.\/dist$/m);
    expect(runtime).toMatch(/ENTRYPOINT \["node", "--max-semi-space-size=32", "dist\/bin\/cli\.js"\]/);
    // The compiled output must not need what --omit=dev leaves out (test/build.test.ts runs it).
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.build).toBe('node scripts/build.js');
  });
});
