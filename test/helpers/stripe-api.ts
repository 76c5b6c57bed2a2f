/**
 * Stripe's API for a test file: stripe-mock (Stripe's own mock server, installed by
 * scripts/install-tools.sh) behind the stateful Stripe double (stack/stripe-double.ts,
 * stack/stripe-double.md). stripe-mock validates every request against Stripe's spec and shapes the
 * answers; the double keeps what Stripe keeps (PaymentIntents, refunds, idempotent results, events),
 * records every call the adapter makes (method, path, idempotency key, form body), injects 5xx and
 * hangs, and delivers signed webhooks when given an endpoint. With STRIPE_RELAY_LOG=<file> every
 * call is also appended to that file as a JSON line once answered (to read which calls an order
 * made, e.g. for a closing note).
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../stack/process.js';
import { loadToolPaths } from '../../stack/services.js';
import {
  startStripeDouble,
  type StripeDouble,
  type StripeDoubleCall,
  type StripeDoubleOptions,
} from '../../stack/stripe-double.js';
import { startStripeMock, type RunningStripeMock } from '../../stack/stripe-mock.js';
import Stripe from 'stripe';
import { STRIPE_API_VERSION } from '../../src/payments/providers/stripe/api.js';

export type StripeCall = StripeDoubleCall;

/** The double's controls and records, plus the stripe-mock behind it. */
export interface StripeApi extends StripeDouble {
  /** STRIPE_API_URL for the app: the double. */
  url: string;
  /** The real server behind the double, for freezing it (SIGSTOP) in fault tests. */
  mock: RunningStripeMock;
  /** Stops the double, then stripe-mock. */
  stop(): Promise<void>;
}

export async function startStripeApi(options: Omit<StripeDoubleOptions, 'stripeMockUrl'> = {}): Promise<StripeApi> {
  const mock = await startStripeMock({
    tools: loadToolPaths(),
    dataDir: mkdtempSync(join(tmpdir(), 'stripe-mock-')),
    port: await freePort(),
  });
  let double: StripeDouble;
  try {
    const relayLog = process.env.STRIPE_RELAY_LOG;
    double = await startStripeDouble({
      ...options,
      stripeMockUrl: mock.url,
      log: (call) => {
        if (relayLog) appendFileSync(relayLog, `${JSON.stringify(call)}\n`);
        options.log?.(call);
      },
    });
  } catch (err) {
    await mock.process.stop();
    throw err;
  }
  const stopDouble = double.stop.bind(double);
  return Object.assign(double, {
    mock,
    async stop() {
      await stopDouble();
      await mock.process.stop();
    },
  });
}

/** A Stripe event and its Stripe-Signature as Stripe signs them (the SDK's test-header helper). */
export function signedStripeEvent(
  secret: string,
  type: string,
  object: Record<string, unknown>,
  eventId = `evt_${randomUUID().replaceAll('-', '')}`,
): { payload: string; signature: string } {
  const payload = JSON.stringify({
    id: eventId,
    object: 'event',
    api_version: STRIPE_API_VERSION,
    created: Math.floor(Date.now() / 1000),
    type,
    data: { object },
  });
  return { payload, signature: Stripe.webhooks.generateTestHeaderString({ payload, secret }) };
}
