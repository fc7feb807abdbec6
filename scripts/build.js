#!/usr/bin/env node
// `npm run build`: compiles the TypeScript that production runs (tsconfig.build.json) to dist/,
// with the migrations beside it where the compiled runner looks for them. `node dist/bin/cli.js`
// then starts with less CPU and memory than running the sources through tsx (README, "Run it").
// `--out DIR` compiles elsewhere (DIR must sit inside this checkout, so node_modules resolves).
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const i = process.argv.indexOf('--out');
const out = resolve(root, i > 0 ? process.argv[i + 1] : 'dist');
rmSync(out, { recursive: true, force: true });
const tsc = spawnSync(
  process.execPath,
  [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', out],
  { cwd: root, stdio: 'inherit' },
);
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
cpSync(join(root, 'migrations'), join(out, 'migrations'), { recursive: true });
// The dashboards' build step runs from JavaScript as it is (it finds the checkout's dashboards/).
cpSync(join(root, 'bin', 'dashboards.js'), join(out, 'bin', 'dashboards.js'));
