/** What one attempt at an order event leaves on its delivery (src/activities/webhooks.ts): pure rules. */
import { describe, expect, it } from 'vitest';
import { attemptRecordOf, retryDelayMs, RETRY_MAX_MS } from '../src/activities/webhooks.js';
import type { DueDelivery } from '../src/db/webhooks.js';
import { CustomerReferences, OrderEventFeed } from '../src/order-events/order-events.js';
import { encodeCursor } from '../src/infra/cursor.js';

const NOW = Date.parse('2026-11-27T12:00:00Z');
const delivery = (attempts: number, retryUntilMs: number): DueDelivery =>
  ({ seq: 1, attempts, retryUntil: new Date(retryUntilMs), event: {} as DueDelivery['event'] }) as DueDelivery;

describe('retries', () => {
  it('double from the first (± 20 %) up to an hour', () => {
    expect(retryDelayMs(1, 5_000, () => 0.5)).toBe(5_000);
    expect(retryDelayMs(3, 5_000, () => 0.5)).toBe(20_000);
    expect(retryDelayMs(40, 5_000, () => 0.5)).toBe(RETRY_MAX_MS);
    expect(retryDelayMs(1, 5_000, () => 0)).toBe(4_000);
    expect(retryDelayMs(1, 5_000, () => 1)).toBe(6_000);
  });

  it('a 2xx delivers; a failure waits for its retry, or gives up past the retry period', () => {
    const within = delivery(0, NOW + 86_400_000);
    expect(attemptRecordOf({ kind: 'delivered', status: 204, ms: 3 }, within, NOW, 5_000).next).toEqual({
      status: 'DELIVERED',
    });
    const failed = { kind: 'failed', status: 500, reason: 'answered 500', ms: 4 } as const;
    expect(attemptRecordOf(failed, within, NOW, 5_000)).toMatchObject({
      outcome: 'failed',
      httpStatus: 500,
      error: 'answered 500',
      next: { status: 'PENDING' },
    });
    expect(attemptRecordOf(failed, delivery(5, NOW + 1_000), NOW, 5_000).next).toEqual({ status: 'GAVE_UP' });
  });

  it('a slow-down waits as long as Retry-After says; a refusal (the address rule) is retried like a failure', () => {
    const within = delivery(0, NOW + 86_400_000);
    const slow = attemptRecordOf({ kind: 'slow_down', status: 429, retryAfterMs: 120_000, ms: 2 }, within, NOW, 5_000);
    expect(slow).toMatchObject({ httpStatus: 429, next: { status: 'PENDING', inMs: 120_000 } });
    const refused = attemptRecordOf({ kind: 'refused', reason: '10.0.0.1: private, refused' }, within, NOW, 5_000);
    expect(refused).toMatchObject({
      outcome: 'refused',
      httpStatus: null,
      durationMs: null,
      next: { status: 'PENDING' },
    });
  });
});

describe('what an admin sees of an attempt', () => {
  it('its status, timing and the kind of failure: never an address, a resolver answer or an error text', () => {
    const within = delivery(0, NOW + 86_400_000);
    const seen = (outcome: Parameters<typeof attemptRecordOf>[0]) => attemptRecordOf(outcome, within, NOW, 5_000).error;
    const refusedAddress = 'internal.merchant resolves to 10.1.2.3: private, refused (an operator may allow…)';
    expect(seen({ kind: 'refused', reason: refusedAddress })).toBe(
      'address refused: not public, or a port other than 443 (80), outside EVENTS_ALLOWED_RANGES',
    );
    const connection = (code: string) =>
      seen({ kind: 'failed', status: null, reason: `connection: ${code}: connect ${code} 10.1.2.3:6379`, ms: 2 });
    expect(connection('ECONNREFUSED')).toBe('connection refused');
    expect(connection('ECONNRESET')).toBe('connection reset');
    expect(connection('ENOTFOUND')).toBe('host name not found');
    expect(connection('DEPTH_ZERO_SELF_SIGNED_CERT')).toBe('TLS refused (certificate or handshake)');
    expect(connection('EHOSTUNREACH')).toBe('connection failed');
    const timeout = { kind: 'failed', status: null, reason: 'timeout: no answer within 15000 ms', ms: 15_000 } as const;
    expect(attemptRecordOf(timeout, within, NOW, 5_000)).toMatchObject({
      error: 'timeout: no answer within EVENTS_ATTEMPT_TIMEOUT_MS',
      durationMs: 15_000,
    });
    expect(seen({ kind: 'failed', status: 502 + 1, reason: 'answered 503', ms: 3 })).toBe('answered 503');
    expect(seen({ kind: 'refused', reason: 'not sendable: ftp: is not http(s)' })).toBe('not a URL it can send to');
    for (const record of [seen({ kind: 'refused', reason: refusedAddress }), connection('ECONNREFUSED')])
      expect(record).not.toMatch(/10\.1\.2\.3|6379|internal/);
  });
});

describe('the feed after its retention', () => {
  const events = { feedPage: async () => ({ events: [], prunedThrough: 100, nextAfter: 100 }) };
  const cursorAt = (position: number) => encodeCursor([String(position)]);

  it('answers 410 CURSOR_EXPIRED to a cursor behind what was deleted, never a page silently short', async () => {
    const feed = new OrderEventFeed(events, new CustomerReferences('delivery-rules-customer-key'));
    await expect(feed.read({ after: cursorAt(99), limit: 10 })).rejects.toMatchObject({ code: 'CURSOR_EXPIRED' });
    await expect(feed.read({ after: cursorAt(100), limit: 10 })).resolves.toMatchObject({ items: [] });
    // No cursor: from the first event kept.
    await expect(feed.read({ limit: 10 })).resolves.toMatchObject({ items: [] });
  });
});
