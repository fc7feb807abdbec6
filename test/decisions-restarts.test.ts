import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { expectNoGroupsAfterRestarts } from './helpers/engine-restarts.ts';
import { testApp } from './helpers/app.ts';

// The decision engine reads the bus without a consumer group: restarting it leaves nothing behind
// on the embedded log (test/kafka/decisions-restarts.test.ts checks the same on Kafka).

let t: Awaited<ReturnType<typeof testApp>>;
beforeAll(async () => {
  t = await testApp();
});
afterAll(async () => {
  await t?.close();
});

it('three restarts of the decision engine leave no new consumer group on the embedded log', async () => {
  await expectNoGroupsAfterRestarts(t, () => readdir(join(t.dir, 'log', '_groups')));
});
