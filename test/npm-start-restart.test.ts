/**
 * `npm start` across a workflow change, as a developer restarts it on a new commit (stack/local-apps.ts, the apps
 * `npm start` runs, on the test stack): every run the first start left open stays pinned to its build and is carried
 * out there by a supervised drain worker, and the second start's API answers only once that worker polls.
 *
 * Build A is this checkout; build B a copy of it with OrderWorkflow changed (one durable timer more), so A's histories
 * do not replay on B. Both starts share one data directory, as `.data/` is shared between two `npm start`s.
 *
 * On A: two orders awaiting payment, and a refund Stripe left pending (its RefundWorkflow asleep until its next look).
 * Then A stops and B starts. On B, at once: a cancel of A's first order answers 202; the drain worker of A is killed
 * (-9) and started again; A's second order is cancelled through it; Stripe settles the refund and its workflow ends
 * REFUNDED at its next look; meanwhile the current worker's metrics show A's open refund and A's worker polling.
 * Every one of those runs completed its tasks on A alone; then A drains and its drain worker stops.
 */
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import type { AppConfig } from '../src/config/index.js';
import { WorkerDeployments } from '../src/infra/worker-deployments.js';
import { REFUND_WORKFLOW_TYPE, refundWorkflowId } from '../src/model/order-workflow.js';
import { orderWorkflowId } from '../src/model/order-workflow.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { stripeClient } from '../src/payments/providers/stripe/api.js';
import { stripe as stripeProvider } from '../src/payments/providers/stripe/definition.js';
import { freePort } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { httpCall } from '../toolkit/http-client.js';
import { settingsOf } from '../toolkit/provider-config.js';
import { changeFile, copyCheckout } from './helpers/builds.js';
import { persistOneTimerLater, ranOn } from './helpers/deploys.js';
import { putOnSale } from './helpers/fixtures.js';
import { parseExposition, total } from './helpers/prometheus.js';
import { NpmStarts } from './helpers/npm-starts.js';
import type { StackClients } from './helpers/stack-clients.js';
import { startStripeApi, type StripeApi } from './helpers/stripe-api.js';

const root = resolve(import.meta.dirname, '..');
let stripeApi: StripeApi;
let starts: NpmStarts;
let config: AppConfig;
let queue: string;
let clients: StackClients;

beforeAll(async () => {
  // A Stripe whose refunds stay pending until settleRefund(), and no webhook: the refund's workflow reads it again.
  stripeApi = await startStripeApi({ refundStatus: 'pending' });
  starts = await NpmStarts.open('npm-start', {
    // The current worker's metrics (its deployment figures); drain workers run without.
    WORKER_METRICS_PORT: String(await freePort()),
    PAYMENT_PROVIDER: 'stripe',
    STRIPE_SECRET_KEY: 'sk_test_flashcheckout',
    STRIPE_WEBHOOK_SECRET: 'whsec_flashcheckouttest',
    STRIPE_API_URL: stripeApi.url,
    STRIPE_DEPLOYMENT_TAG: 'flash-checkout-npm-start-test',
  });
  ({ config, clients, queue } = starts);
}, 60_000);

afterAll(async () => {
  await starts?.close();
  await stripeApi?.stop();
});

const npmStart = (checkout: string) => starts.start(checkout, 2_000);

it('restarted on a new build: a refund and orders left on the old build are carried out there, through a kill -9', async () => {
  const { apiUrl } = starts;
  const a = await npmStart(root);
  const { sku } = await putOnSale(clients.stores, clients.redis, { stock: 5 });
  // Two shoppers (one unit each, the sale's limit), each order cancelled by its own.
  const auth = new ShopperAuth(config);
  const tokenOf = new Map<string, string>();
  const buy = async () => {
    const token = `Bearer ${await auth.issue(`npm-start-${randomUUID().slice(0, 8)}`)}`;
    const answer = await httpCall('POST', `${apiUrl}/api/checkout`, {
      headers: { authorization: token, prefer: 'wait=10' },
      json: { sku, quantity: 1 },
    });
    expect(answer.status, answer.body).toBe(201);
    const { orderNo } = answer.json as { orderNo: string };
    tokenOf.set(orderNo, token);
    return orderNo;
  };
  const cancel = (orderNo: string) =>
    httpCall('POST', `${apiUrl}/api/orders/${orderNo}/cancel`, { headers: { authorization: tokenOf.get(orderNo) } });
  const orders = [await buy(), await buy()];

  // A payment owed back (money on an intent no order opened), its refund asked on A and left pending at Stripe.
  const settings = settingsOf(config, stripeProvider)!;
  const intent = await stripeClient(settings).paymentIntents.create({ amount: 1_500, currency: 'usd' });
  stripeApi.confirm(intent.id, 'succeeded');
  const eventId = `evt-npm-start-${randomUUID()}`;
  const recorded = await clients.stores.payments.recordPayment(
    { eventId, orderNo: newOrderNo(), amountCents: 1_500, provider: 'stripe', providerRef: intent.id },
    'webhook',
    'INTENT_MISMATCH',
  );
  expect(recorded.row.outcome).toBe('REFUND_REQUIRED');
  await clients.temporal.workflow.start(REFUND_WORKFLOW_TYPE, {
    workflowId: refundWorkflowId(eventId),
    taskQueue: queue,
    args: [{ eventId }],
  });
  await waitFor(async () => (await clients.stores.payments.getPayment(eventId))?.outcome === 'REFUND_REQUESTED', {
    what: 'the refund to be asked on A and left pending',
    timeoutMs: 30_000,
  });
  const [refund] = stripeApi.refundsOf(intent.id);
  expect(refund?.status).toBe('pending');
  await a.stop();

  // ── npm start again, on build B ──
  const checkoutB = copyCheckout(join(starts.dataDir, 'checkout-b'));
  changeFile(checkoutB, 'src/workflows/order.ts', persistOneTimerLater);
  const restartedAt = Date.now();
  const b = await npmStart(checkoutB);
  expect(b.buildId).not.toBe(a.buildId);
  const drainWorker = b.olderBuilds.draining.get(a.buildId);
  expect(drainWorker, starts.lines.join('\n')).toBeDefined();
  expect(starts.lines.join('\n')).toContain(`build ${a.buildId}: `);
  // A scheduled reconcile may be running on A too: it is counted and drained alike.
  expect(starts.lines.join('\n')).toMatch(/OrderWorkflow 2, RefundWorkflow 1(, \w+ \d+)*; its drain worker polls/);
  // When the API answers, a worker of A polls already (a poll since the restart), so a cancel of A's order is taken.
  const deployments = new WorkerDeployments(clients.connection, config.temporal.namespace, 'npm-start-test');
  const versionA = { deploymentName: config.temporal.versioning!.deploymentName, buildId: a.buildId };
  await deployments.untilPolledSince(versionA, queue, restartedAt, 0);
  const first = await cancel(orders[0]!);
  expect(first.status, first.body).toBe(202);

  // A drain worker that dies is started again.
  const killedAt = Date.now();
  drainWorker!.kill('SIGKILL');
  await waitFor(() => drainWorker!.restarts === 1, { what: "A's drain worker to be started again", timeoutMs: 30_000 });
  await deployments.untilPolledSince(versionA, queue, killedAt, 60_000);
  const second = await cancel(orders[1]!);
  expect(second.status, second.body).toBe(202);

  // The current build's metrics show what keeps A: its open runs by type, and its worker polling.
  const metricsUrl = `http://127.0.0.1:${config.workerMetricsPort}/metrics`;
  const figures = async () => parseExposition((await httpCall('GET', metricsUrl)).body);
  await waitFor(
    async () => {
      const samples = await figures().catch(() => []);
      return (
        total(samples, 'flash_deployment_open_runs', { build_id: a.buildId, workflow_type: 'RefundWorkflow' }) === 1 &&
        total(samples, 'flash_deployment_pollers', { build_id: a.buildId }) >= 1
      );
    },
    { what: "B's worker to show A's open refund and A's worker polling", timeoutMs: 45_000 },
  );

  // Stripe settles the refund; the workflow's next look (a minute after it asked, ± 20 %) ends it, on A.
  stripeApi.settleRefund(refund!.id, 'succeeded');
  expect(await clients.temporal.workflow.getHandle(refundWorkflowId(eventId)).result()).toBe('REFUNDED');
  expect(await clients.stores.payments.getPayment(eventId)).toMatchObject({ outcome: 'REFUNDED' });

  for (const orderNo of orders) {
    await waitFor(async () => (await ranOn(clients.temporal, orderWorkflowId(orderNo))).closed, {
      what: `${orderNo} to close`,
      timeoutMs: 30_000,
    });
    expect((await clients.stores.orders.getOrder(orderNo))?.status).toBe('CANCELLED');
  }
  for (const workflowId of [...orders.map(orderWorkflowId), refundWorkflowId(eventId)])
    expect(await ranOn(clients.temporal, workflowId), workflowId).toEqual({
      buildIds: [a.buildId],
      failedTasks: 0,
      closed: true,
    });

  // Nothing left on A: it drains, and its drain worker is stopped.
  await waitFor(() => !b.olderBuilds.draining.has(a.buildId), {
    what: "A's drain worker to stop once A drained",
    timeoutMs: 60_000,
  });
}, 240_000);
