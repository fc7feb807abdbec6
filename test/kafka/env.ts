import { randomBytes } from 'node:crypto';
import { parseConfig } from '../../core/config.ts';

// The Kafka suite runs on a real broker or fails; it is never silently skipped.

const HOW =
  'Run `npm test` (it starts a local broker with scripts/kafka.sh) or set PARLEY_KAFKA_BROKERS=host:port.';

/** The brokers the Kafka suite runs against; throws (failing the file) when there are none. */
export function kafkaBrokers(): string[] {
  const brokers = parseConfig({ PARLEY_KAFKA_BROKERS: process.env.PARLEY_KAFKA_BROKERS }).kafka?.brokers;
  if (!brokers?.length)
    throw new Error(`The Kafka suite needs a real broker and PARLEY_KAFKA_BROKERS is not set. ${HOW}`);
  return brokers;
}

/** The script that starts and stops the local broker, for tests that stop a broker. */
export function kafkaScript(): string {
  const script = process.env.PARLEY_TEST_KAFKA_SCRIPT;
  if (!script)
    throw new Error(`This test stops and starts a broker and PARLEY_TEST_KAFKA_SCRIPT is not set. ${HOW}`);
  return script;
}

/** A name no other test (or earlier run) uses. */
export const unique = (base: string) =>
  `${base}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
