#!/usr/bin/env node
// node bench/run.js <name> [options]: runs bench/<name>.ts (TypeScript through tsx).
import { register } from 'tsx/esm/api';

const [name, ...rest] = process.argv.slice(2);
if (!name || !/^[a-z-]+$/.test(name)) {
  console.error(
    'usage: node bench/run.js <ingest|feed|kafka|publish|webhooks|segments|decisions|reports|dashboards|funnel|attribution|dedup|registry|store-calls|soak|startup> [options]',
  );
  process.exit(2);
}
process.argv = [process.argv[0], name, ...rest];
register();
await import(`./${name}.ts`);
