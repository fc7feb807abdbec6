#!/usr/bin/env -S node --max-semi-space-size=32
// A young generation of 2 × 32 MB: events stay referenced for a few seconds between ingest and the
// consumers, and a larger young generation copies them fewer times (docs/ingest.md).
// Runs the TypeScript sources directly, with no build step (`npm start`); production runs the
// JavaScript `npm run build` compiles to dist/ (`npm run start:built`, the Docker image).
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
