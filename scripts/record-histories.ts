/**
 * `npm run record-histories -- --out test/replay/histories/<release>`: runs OrderWorkflow through
 * every path it has (and EndpointDeliveryWorkflow through its main ones), on a throw-away local stack
 * (Temporal dev server, Redis, MariaDB) with the production worker and real activities, and exports
 * each history as JSON (the format of the Temporal CLI and the Web UI's "Download" button). `npm test`
 * replays every recorded history against today's workflow code (test/replay.test.ts), so a change that
 * is not replay-compatible with this build's orders fails CI.
 *
 * The worker and the client encrypt as in production (src/infra/payload-codec.ts), with this checkout's
 * key; the histories are written decoded (every payload plain), so that they replay on any checkout.
 *
 * Orders are Pinned: when the workflow's commands change on purpose, the new build's histories
 * replace the old build's folder (docs/testing.md, "Changing the workflow"). Recorded unversioned.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { NativeConnection } from '@temporalio/worker';
import { SalesService } from '../src/sales/sales-service.js';
import { loadConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { openStores, type Stores } from '../src/db/stores.js';
import { createRedis } from '../src/infra/redis.js';
import { payloadCodecOf, temporalDataConverter } from '../src/infra/data-converter.js';
import { decodeHistoryPayloads, eachPayload } from '../toolkit/history-payloads.js';
import { ENCRYPTED_ENCODING } from '../src/infra/payload-codec.js';
import { RedisInventory } from '../src/redis/inventory.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { startStack } from '../stack/index.js';
import { loadToolPaths } from '../stack/services.js';
import { startStripeMock } from '../stack/stripe-mock.js';
import { startStripeDouble, type StripeDouble } from '../stack/stripe-double.js';
import { freePort } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import {
  createOrderWorker,
  workerActivities,
  type OrderWorkers,
  type WorkerActivities,
} from '../src/workers/worker.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import {
  DELIVERY_REPLAY_SCENARIOS,
  REPLAY_SCENARIOS,
  type DeliveryReplayScenario,
  type ReplayScenario,
} from '../test/replay/scenarios.js';
import { endpointDeliveryWorkflowId } from '../src/model/delivery-workflow.js';
import { EndpointDeliveryClient } from '../src/order-events/endpoint-delivery-client.js';
import { EndpointSecretBox, generateEndpointSecret } from '../src/order-events/endpoint-secrets.js';
import { startEventReceiver } from '../stack/event-receiver.js';
import type { AppConfig } from '../src/config/index.js';
import { storedPayment } from '../src/payments/receiver.js';
import {
  cancelUpdate,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  paymentAppliedSignal,
  statusQuery,
  durationToMs,
  type OrderInput,
  type OrderStatus,
} from '../src/model/order-workflow.js';
import type { OrderWorkflow } from '../src/workflows/order.js';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: { out: { type: 'string' }, only: { type: 'string' }, encrypted: { type: 'boolean' } },
});
/**
 * `--encrypted`: written as Temporal stores them, under the committed test key (test/replay/encrypted/fixture-key, a
 * published key for this only), so that test/replay.test.ts replays a history through the codec.
 */
const FIXTURE_KEY = resolve(import.meta.dirname, '..', 'test', 'replay', 'encrypted', 'fixture-key');
if (!args.out) throw new Error('usage: npm run record-histories -- --out test/replay/histories/<release>');
const outDir = resolve(root, args.out);
const say = (line: string) => console.log(`[record] ${line}`);

/** Holds an activity until the scenario lets it go, so a signal can land while it runs. */
class Gate {
  private openGate!: () => void;
  private reachedGate!: () => void;
  readonly opened = new Promise<void>((resolveOpen) => (this.openGate = resolveOpen));
  readonly reached = new Promise<void>((resolveReached) => (this.reachedGate = resolveReached));
  arrive(): void {
    this.reachedGate();
  }
  open(): void {
    this.openGate();
  }
  /** Arrives, and waits until opened. */
  async pass(): Promise<void> {
    this.arrive();
    await this.opened;
  }
}

const gates: { persistOrder?: Gate; cancelClose?: Gate } = {};
/** persistOrder attempts that failed in the current scenario, and how many are to fail. */
let failedPersists: number | undefined;
let persistFailures = 0;

/** The real activities, held at the scenario's gates and failed as the scenario says. */
function gatedActivities(real: WorkerActivities): WorkerActivities {
  return {
    ...real,
    persistOrder: async (input) => {
      if (failedPersists !== undefined && failedPersists < persistFailures) {
        failedPersists++;
        throw Object.assign(new Error('connect ECONNREFUSED (recording: MySQL down)'), { code: 'ECONNREFUSED' });
      }
      const gate = gates.persistOrder;
      if (gate) {
        gate.arrive();
        await gate.opened;
      }
      return real.persistOrder(input);
    },
    // A close asked to cancel (the deadline's, a shopper's) is held; a payment's is not.
    closeOrder: async (input) => {
      if (input.request.kind === 'CANCEL') await gates.cancelClose?.pass();
      return real.closeOrder(input);
    },
  };
}

async function main(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'flash-record-'));
  const stack = await startStack({
    dataDir: join(workDir, 'stack'),
    ports: 'free',
    ephemeral: true,
    env: {},
    log: say,
  });
  // The Stripe scenarios' PaymentIntents: the Stripe double (its states) over Stripe's own mock; no webhook.
  const stripeMock = await startStripeMock({
    tools: loadToolPaths(),
    dataDir: join(workDir, 'stripe-mock'),
    port: await freePort(),
  });
  const stripe = await startStripeDouble({ stripeMockUrl: stripeMock.url, rateLimitPerSecond: 0 });
  const config = loadConfig({
    ...process.env,
    ...stack.env,
    STRIPE_API_URL: stripe.url,
    STRIPE_SECRET_KEY: 'sk_test_recorder',
    STRIPE_WEBHOOK_SECRET: 'whsec_recorder',
    TEMPORAL_TASK_QUEUE: `record-${randomUUID()}`,
    // Unversioned: a late worker's scenario starts its order before any worker polls its queue, and a history replays
    // the same whichever version ran it.
    WORKER_VERSIONING: 'false',
    LOG_LEVEL: 'warn',
    // The delivery scenarios' receiver listens on loopback, which the sender refuses unless allowed.
    EVENTS_ALLOWED_RANGES: '127.0.0.0/8',
    ...(args.encrypted
      ? { PAYLOAD_CODEC_KEYS: readFileSync(FIXTURE_KEY, 'utf8').trim(), PAYLOAD_CODEC_MODE: 'encrypt' }
      : {}),
  });
  const pool = createMysqlPool(config);
  const stores = openStores(pool);
  const redis = createRedis(config);
  const nativeConnection = await NativeConnection.connect({ address: config.temporal.address });
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: temporalDataConverter(config),
  });
  try {
    await migrate(pool);
    const bundle = join(workDir, 'workflow-bundle.js');
    await buildWorkflowBundle(bundle);
    const makeWorker = (taskQueue: string) => {
      const onQueue = { ...config, temporal: { ...config.temporal, taskQueue } };
      const activities = gatedActivities(workerActivities({ config: onQueue, stores, redis }));
      return createOrderWorker({
        config: onQueue,
        connection: nativeConnection,
        workflowBundlePath: bundle,
        activities,
      });
    };
    const worker = await makeWorker(config.temporal.taskQueue);
    const inventory = new RedisInventory(redis, config.temporal.taskQueue);
    const sales = SalesService.onClients(stores, redis, config.temporal.taskQueue);
    mkdirSync(outDir, { recursive: true });
    const running = worker.run();
    try {
      for (const scenario of REPLAY_SCENARIOS) {
        if (args.only && !args.only.split(',').includes(scenario.name)) continue;
        const t0 = Date.now();
        const sku = `REC-${scenario.name}-${randomUUID().slice(0, 6)}`.toUpperCase();
        await sales.create({ sku, name: sku, priceCents: 1_500, stock: 5, perUserLimit: 2 });
        const orderNo = newOrderNo();
        await inventory.reserve({ orderNo, sku, userId: 'recorder', quantity: 1 });
        const input: OrderInput = {
          orderNo,
          sku,
          userId: 'recorder',
          quantity: 1,
          unitPriceCents: 1_500,
          createdAt: new Date().toISOString(),
          paymentWindow: scenario.paymentWindow ?? '30m',
          ...(scenario.paymentProvider ? { paymentProvider: scenario.paymentProvider } : {}),
        };
        // A scenario with a late worker gets a queue and a worker of its own, which it stops and starts.
        const ownQueue = scenario.lateWorker ? `${config.temporal.taskQueue}-${scenario.name}` : undefined;
        await playScenario(scenario, {
          stripe,
          client,
          stores,
          inventory,
          input,
          taskQueue: ownQueue ?? config.temporal.taskQueue,
          ...(ownQueue ? { lateWorker: lateWorkerOn(() => makeWorker(ownQueue)) } : {}),
        });
        const file = join(outDir, `${scenario.name}.json`);
        await exportHistory(client, args.encrypted ? null : payloadCodecOf(config), orderWorkflowId(orderNo), file);
        say(`${scenario.name}: ${Date.now() - t0} ms → ${file}`);
      }
      for (const scenario of DELIVERY_REPLAY_SCENARIOS) {
        if (args.only && !args.only.split(',').includes(scenario.name)) continue;
        const t0 = Date.now();
        const sku = `REC-${scenario.name}-${randomUUID().slice(0, 6)}`.toUpperCase();
        await sales.create({ sku, name: sku, priceCents: 1_500, stock: 20, perUserLimit: 20 });
        const workflowId = await playDeliveryScenario(scenario, { client, config, stores, sku });
        const file = join(outDir, `${scenario.name}.json`);
        await exportHistory(client, args.encrypted ? null : payloadCodecOf(config), workflowId, file);
        say(`${scenario.name}: ${Date.now() - t0} ms → ${file}`);
      }
    } finally {
      worker.shutdown();
      await running;
    }
  } finally {
    await Promise.allSettled([nativeConnection.close(), connection.close(), pool.end(), redis.quit()]);
    await stripe.stop();
    await stripeMock.process.stop();
    await stack.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

interface ScenarioDeps {
  /** The Stripe the Stripe scenarios' shoppers pay at. */
  stripe: StripeDouble;
  client: Client;
  stores: Stores;
  inventory: RedisInventory;
  input: OrderInput;
  taskQueue: string;
  lateWorker?: LateWorker;
}

interface LateWorker {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A worker the scenario stops (nothing of its queue runs) and starts again; running at first. */
function lateWorkerOn(make: () => Promise<OrderWorkers>): LateWorker {
  let running: { worker: OrderWorkers; done: Promise<void> } | undefined;
  const handle: LateWorker = {
    async start() {
      if (running) return;
      const worker = await make();
      running = { worker, done: worker.run() };
    },
    async stop() {
      if (!running) return;
      running.worker.shutdown();
      await running.done;
      running = undefined;
    },
  };
  return handle;
}

async function playScenario(scenario: ReplayScenario, deps: ScenarioDeps): Promise<void> {
  const { client, stores, inventory, input } = deps;
  if (scenario.saleGone) await stores.sales.deleteSale(input.sku);
  if (scenario.releasedBeforeStart) await inventory.release(input.sku, input.orderNo, { as: 'unclaimed' });
  if (scenario.persistFails) {
    failedPersists = 0;
    persistFailures = scenario.persistFails;
  }
  if (scenario.holdPersist) gates.persistOrder = new Gate();
  if (scenario.holdCancel) gates.cancelClose = new Gate();
  await deps.lateWorker?.start();
  try {
    const handle = await client.workflow.start<typeof OrderWorkflow>(ORDER_WORKFLOW_TYPE, {
      workflowId: orderWorkflowId(input.orderNo),
      taskQueue: deps.taskQueue,
      args: [input],
    });
    const total = input.unitPriceCents * input.quantity;
    // Payments go the way the webhook takes them: recorded and decided by the order's row, then the Signal of one the
    // row applied (recordPayment alone: a Signal that was lost).
    const record = (eventId: string, amountCents = total) =>
      stores.payments.recordPayment({ eventId, orderNo: input.orderNo, amountCents }, 'webhook');
    const recordPayment = async (eventId: string, amountCents = total) => (await record(eventId, amountCents)).row;
    const pay = async (eventId: string, amountCents = total) => {
      const { row, judged } = await record(eventId, amountCents);
      if (judged && row.outcome === 'APPLIED') await handle.signal(paymentAppliedSignal, storedPayment(row));
      return row.outcome;
    };
    const statusIs = (status: OrderStatus) =>
      waitFor(async () => (await handle.query(statusQuery)).status === status, {
        what: `${handle.workflowId} ${status}`,
        timeoutMs: 20_000,
      });
    await scenario.play({
      handle,
      pay,
      cancel: () => handle.executeUpdate(cancelUpdate, {}),
      persistAttempts: async (atLeast) => {
        await waitFor(() => (failedPersists ?? 0) >= atLeast, {
          what: `${atLeast} failed persist attempts`,
          timeoutMs: 30_000,
        });
      },
      loseReservation: async () => {
        await inventory.release(input.sku, input.orderNo, { as: 'owner' });
      },
      statusIs,
      paymentIntentMade: () =>
        waitFor(async () => (await handle.query(statusQuery)).paymentIntent !== undefined, {
          what: `${handle.workflowId}'s PaymentIntent`,
          timeoutMs: 20_000,
        }),
      payAtProvider: async () => {
        const intent = (await handle.query(statusQuery)).paymentIntent;
        if (!intent) throw new Error(`${handle.workflowId} has no PaymentIntent to pay`);
        deps.stripe.confirm(intent.id, 'succeeded');
      },
      persistHeld: async () => {
        await gates.persistOrder?.reached;
      },
      releasePersist: () => gates.persistOrder?.open(),
      cancelHeld: async () => {
        await gates.cancelClose?.reached;
      },
      releaseCancel: () => gates.cancelClose?.open(),
      total,
      recordPayment: async (eventId) => {
        await recordPayment(eventId);
      },
      signalWithoutPayment: async () => {
        await handle.signal(paymentAppliedSignal, {
          eventId: 'evt-made-up-by-hand',
          amountCents: total,
          receivedAt: new Date().toISOString(),
        });
      },
      deadline: Date.parse(input.createdAt) + durationToMs(input.paymentWindow),
      stopWorker: async () => deps.lateWorker?.stop(),
      startWorker: async () => deps.lateWorker?.start(),
    });
    await handle.result().catch(() => undefined);
  } finally {
    await deps.lateWorker?.stop();
    failedPersists = undefined;
    gates.persistOrder?.open();
    gates.cancelClose?.open();
    delete gates.persistOrder;
    delete gates.cancelClose;
  }
}

/** An endpoint with a receiver of its own, its delivery workflow played through the scenario to its end; its id. */
async function playDeliveryScenario(
  scenario: DeliveryReplayScenario,
  deps: { client: Client; config: AppConfig; stores: Stores; sku: string },
): Promise<string> {
  const { client, config, stores, sku } = deps;
  const secret = generateEndpointSecret();
  const answer = scenario.answer;
  const receiver = await startEventReceiver({
    secrets: [secret],
    ...(answer ? { answer: (_id: string, seen: number) => answer(seen) } : {}),
  });
  const endpointId = `ep_rec_${randomUUID().slice(0, 8)}`;
  const deliveries = new EndpointDeliveryClient(client, config);
  try {
    await stores.webhooks.createEndpoint({
      endpointId,
      url: receiver.url,
      eventTypes: [],
      description: `recording ${scenario.name}`,
      secretBox: new EndpointSecretBox(config.webhookDelivery.secretKeys).seal(endpointId, secret),
    });
    await deliveries.wake(endpointId, 5_000);
    await scenario.play({
      async writeEvent() {
        const orderNo = newOrderNo();
        await stores.orders.insertAwaitingOrder({
          orderNo,
          sku,
          userId: 'recorder',
          quantity: 1,
          unitPriceCents: 1_500,
          paymentDeadline: new Date(Date.now() + 60_000),
          createdAt: new Date(),
        });
        await stores.payments.recordPayment({ eventId: `evt-${orderNo}`, orderNo, amountCents: 1_500 }, 'webhook');
        return `${orderNo}.order.paid`;
      },
      async received(eventId) {
        await waitFor(() => receiver.received.some((event) => event.id === eventId), {
          what: `${eventId} received`,
          timeoutMs: 20_000,
        });
      },
      wake: () => deliveries.wake(endpointId, 5_000),
      async disable() {
        await stores.webhooks.updateEndpoint(endpointId, { enabled: false });
        await deliveries.wake(endpointId, 5_000);
      },
    });
    const workflowId = endpointDeliveryWorkflowId(endpointId);
    await client.workflow.getHandle(workflowId).result();
    return workflowId;
  } finally {
    await receiver.close();
  }
}

/**
 * The history, decoded (every payload as the workflow saw it, failures' messages and stacks included), as proto JSON:
 * the format of the Web UI's download and of `temporal workflow show --output json`. Refuses to write a payload that
 * is still encrypted: a committed history must replay with any checkout's key. `codec` null (--encrypted): as stored,
 * refused unless encrypted.
 */
async function exportHistory(
  client: Client,
  codec: PayloadCodec | null,
  workflowId: string,
  file: string,
): Promise<void> {
  const fetched = await client.workflow.getHandle(workflowId).fetchHistory();
  const history = codec ? await decodeHistoryPayloads(fetched, codec) : fetched;
  if (!history.events?.length) throw new Error(`empty history exported for ${workflowId}`);
  const encrypted = [...eachPayload(history)].filter((payload) => {
    const encoding = payload.metadata?.encoding;
    return encoding !== undefined && encoding !== null && new TextDecoder().decode(encoding) === ENCRYPTED_ENCODING;
  });
  if (codec && encrypted.length > 0) throw new Error(`${workflowId}: a payload is still encrypted after decoding`);
  if (!codec && encrypted.length === 0) throw new Error(`${workflowId}: --encrypted, yet no payload is encrypted`);
  writeFileSync(file, `${JSON.stringify(JSON.parse(historyToJSON(history)), null, 1)}\n`);
}

await main();
