/**
 * Requests a shopper's page makes that more than one tool sends the same way: the soak's payers and the benchmark's
 * payment phase with --provider stripe (bench/payments.ts) both read the order until its PaymentIntent shows, then
 * confirm it at Stripe (the double).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AnswerRecorder, HttpClient } from './http-client.js';

/**
 * The order's PaymentIntent: a status read (the page before paying, `path` its /api/orders/:orderNo), again every 2 s
 * until it shows (the workflow opens it a moment after the order is persisted); null once `giveUpAt` passes. Each
 * read's answer is recorded `into` when given.
 */
export async function paymentIntentOf(
  api: HttpClient,
  path: string,
  auth: Record<string, string>,
  giveUpAt: number,
  into?: AnswerRecorder,
): Promise<string | null> {
  for (let read = 0; Date.now() < giveUpAt; read++) {
    if (read > 0) await sleep(2_000);
    const answer = await api.request('GET', path, { headers: auth, timeoutMs: 30_000 });
    into?.record(answer.failure ? null : answer.status, answer.ms);
    if (answer.status !== 200) continue;
    const order = answer.json as { paymentIntent?: { id: string } | null } | undefined;
    if (order?.paymentIntent?.id) return order.paymentIntent.id;
  }
  return null;
}

/**
 * A shopper's confirm at Stripe (the double): the PaymentIntent paid with the test card that succeeds, authenticated
 * with the secret key (the double takes sk_test_ keys, where Stripe.js sends the publishable one).
 */
export function confirmRequest(
  intentId: string,
  secretKey: string,
): { path: string; headers: Record<string, string>; body: string } {
  return {
    path: `/v1/payment_intents/${encodeURIComponent(intentId)}/confirm`,
    headers: { authorization: `Bearer ${secretKey}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'payment_method=pm_card_visa',
  };
}
