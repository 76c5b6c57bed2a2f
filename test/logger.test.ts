/** The logger's redaction (src/infra/logger.ts): a credential is never written, at whatever depth it is logged. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/infra/logger.js';

const MARKER = 'Mk7q9ZsecretMARKER';
const KEY = Buffer.from(`${MARKER}${MARKER}`.slice(0, 32)).toString('base64');

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { logger: createLogger({ logLevel: 'debug' }, 'test', destination), text: () => lines.join('') };
}

describe('the logger', () => {
  it('writes the whole configuration with no secret in it, however deep', () => {
    const config = loadConfig({
      WEBHOOK_SECRET: `${MARKER}-webhook`,
      JWT_SECRET: `${MARKER}-jwt`,
      ADMIN_TOKEN: `${MARKER}-admin`,
      EVENTS_SECRET_KEY: `${MARKER}-events-key`,
      EVENTS_READ_TOKEN: `${MARKER}-events-read`,
      CODEC_SERVER_TOKEN: `${MARKER}-codec`,
      LINE_CHALLENGE_HEADER: 'X-Challenge',
      LINE_CHALLENGE_SECRET: `${MARKER}-challenge`,
      TEMPORAL_API_KEY: `${MARKER}-temporal`,
      MYSQL_URL: `mysql://flash:${MARKER}@127.0.0.1:3307/flash`,
      REDIS_URL: `redis://default:${MARKER}@127.0.0.1:6380`,
      PAYLOAD_CODEC_KEYS: `k1=${KEY}`,
      STRIPE_SECRET_KEY: `sk_test_${MARKER}`,
    });
    const { logger, text } = capture();
    logger.info({ config }, 'started');
    logger.info({ nested: { deeper: { still: { config: config.webhookDelivery, list: [config.codecServer] } } } });
    // A URL inside a message, as a driver's error may quote it.
    logger.warn({ error: `connect failed: mysql://flash:${MARKER}@127.0.0.1:3307/flash refused` }, 'MySQL away');
    expect(text()).not.toContain(MARKER);
    expect(text()).not.toContain(KEY);
    // What is not a secret is still written.
    expect(text()).toContain('"mysqlUrl":"mysql://flash:[secret]@127.0.0.1:3307/flash"');
    expect(text()).toContain(`"taskQueue":"${config.temporal.taskQueue}"`);
  });

  it('leaves the logged object as it was', () => {
    const { logger } = capture();
    const entry = { endpoint: { secretKey: MARKER } };
    logger.info(entry);
    expect(entry.endpoint.secretKey).toBe(MARKER);
  });
});
