/**
 * The fault suite's order-events round, events-receiver-freeze-worker-kill (issue 63, item 8): a merchant's endpoint
 * (stack/event-receiver.ts, a process of its own) is frozen mid-sale and, while it hangs, the worker that delivers to
 * it is SIGKILLed and restarted by its supervisor. Every event of the sale's orders must still reach the merchant.
 *
 *   before   the receiver starts as its own process (so it can be SIGSTOPped); an endpoint on it is made through the
 *            admin API, and its secret given to the receiver (POST /_receiver/secrets)
 *   sale     `shoppers` arrive at `arrivalsPerSecond` (more stock than shoppers), with the suite's traffic: most pay
 *            (on time, twice, wrong amount then right, early), some cancel, some pay late or never (cancelled at
 *            their deadline): order.paid and order.cancelled are written throughout
 *   faults   `faultAfterMs` in, the receiver is SIGSTOPped for `freezeMs` (the sender's attempts time out:
 *            EVENTS_ATTEMPT_TIMEOUT_MS); `killAfterFreezeMs` into the freeze, as soon as the endpoint's workflow has a
 *            round (its activity) started, the worker is SIGKILLed with that round's attempts hanging, and its
 *            supervisor starts it again; then SIGCONT. The lost round is retried once its heartbeat timeout (1 min,
 *            src/workflows/webhooks.ts) passes: the endpoint hears nothing until then (deliveryRounds in the figures)
 *   after    once the sale is quiet, every event of its orders (order_events) is waited for, up to `deliveredWithinMs`,
 *            DELIVERED to the endpoint, and nothing of the endpoint left PENDING
 *
 * Checks beside the invariants every round checks (CHAOS_CHECKS):
 *   everyEventDelivered   every event of the sale's orders is DELIVERED to the endpoint
 *   everyEventAccepted    the receiver accepted exactly the events delivered to the endpoint, id by id and type by
 *                         type; repeats are deduplicated by id and reported (duplicates), not failed
 *   typesMatchOrders      each PAID order has one order.paid, each CANCELLED one order.cancelled, each FAILED one
 *                         order.failed (a FAILED order may have been paid first), and none of another final state
 *   noUnverifiedRequest   the receiver verified every request it got (standardwebhooks, the endpoint's secret)
 *   noDeliveryGaveUp      no delivery of the endpoint GAVE_UP
 */
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { OrderEventRow } from '../../src/db/events.js';
import type { Stores } from '../../src/db/stores.js';
import type { AttemptRow, DeliveryRow } from '../../src/db/webhooks.js';
import { endpointDeliveryWorkflowId } from '../../src/model/delivery-workflow.js';
import type { OrderEventType } from '../../src/model/order-workflow.js';
import type { ReceiverSummary } from '../../stack/event-receiver.js';
import { spawnScriptProcess } from '../../stack/app-processes.js';
import { freePort, freezeGroup, signalGroup, waitUntilReady, type ManagedProcess } from '../../stack/process.js';
import { waitFor } from '../../stack/wait-for.js';
import { answersOk, httpCall, isOk } from '../../toolkit/http-client.js';
import { CHAOS_CHECKS, countBy } from '../checks.js';
import { runTraffic, type RunningTraffic } from '../../toolkit/shoppers.js';
import { kill } from './faults.js';
import { defineRound, step, type RoundSection, type Suite } from './round.js';
import {
  acceptedOf,
  checkInvariants,
  PRICE_CENTS,
  round1,
  SaleUnderFault,
  skuOf,
  sleepUntil,
  trafficPlan,
  waitForQuiet,
  waitForStoresToAgree,
} from './steps.js';

const EVENTS_CHECKS = [
  'everyEventDelivered',
  'everyEventAccepted',
  'typesMatchOrders',
  'noUnverifiedRequest',
  'noDeliveryGaveUp',
] as const;
type EventsCheck = (typeof EVENTS_CHECKS)[number];

/**
 * The worker's sender in this suite (added to every process's environment when the round runs): loopback allowed (the
 * receiver), a short first retry and attempt timeout, so the round's deliveries catch up within its bound.
 */
const EVENTS_ROUND_ENV: Record<string, string> = {
  EVENTS_ALLOWED_RANGES: '127.0.0.0/8,::1/128',
  EVENTS_RETRY_FIRST: '500ms',
  EVENTS_ATTEMPT_TIMEOUT_MS: '2000',
};

interface EventsPlan {
  shoppers: number;
  /** More than the shoppers: every checkout is an order, the sale's events are its shoppers' doing. */
  stock: number;
  arrivalsPerSecond: number;
  /** The receiver is frozen this long after the first shopper, for `freezeMs`. */
  faultAfterMs: number;
  freezeMs: number;
  /** The worker is SIGKILLed this long into the freeze, or after, once a delivery round is in flight. */
  killAfterFreezeMs: number;
  /** Once the sale is quiet, how long every event is waited for DELIVERED. */
  deliveredWithinMs: number;
}

const EVENTS_PLAN: EventsPlan = {
  shoppers: 240,
  stock: 260,
  arrivalsPerSecond: 8,
  faultAfterMs: 5_000,
  freezeMs: 20_000,
  killAfterFreezeMs: 3_000,
  deliveredWithinMs: 120_000,
};

/** The round's name in the fault list and the results file. */
const NAME = 'events-receiver-freeze-worker-kill';
const root = resolve(import.meta.dirname, '..', '..');

/** The round's state, filled in by its steps in order. */
class EventsSale extends SaleUnderFault {
  readonly p = EVENTS_PLAN;
  /** The merchant's receiver (a process of its own, so it can be frozen) and the endpoint made on it. */
  receiver: ManagedProcess | undefined;
  receiverUrl = '';
  endpointId: string | undefined;
  traffic!: RunningTraffic;
  deliveredAtFreeze: DeliveryRow[] = [];
  freezeAt = 0;
  /** When the receiver was continued (0: frozen, or never). */
  thawAt = 0;
  roundInFlightAtKill = false;
  killAt = 0;
  workerBackAt = 0;
  /** The sale's orders (whose 202 was lost too), their events and the endpoint's deliveries, once waited for. */
  orderNos: string[] = [];
  settledSeconds = 0;
  events: OrderEventRow[] = [];
  deliveries: DeliveryRow[] = [];
  summary!: ReceiverSummary;
  section: RoundSection | undefined;

  get endpoint(): string {
    if (!this.endpointId) throw new Error('no endpoint was made');
    return this.endpointId;
  }
}

/** Before the sale: the receiver as a process of its own, and an endpoint on it made as an admin makes one. */
const startReceiver = step<EventsSale>('start the receiver', async (s) => {
  const { suite, p } = s;
  const { apiUrls, config } = suite;
  if (p.killAfterFreezeMs >= p.freezeMs) throw new Error('the worker must be killed while the receiver is frozen');
  const port = await freePort();
  s.receiver = spawnScriptProcess({
    name: 'event-receiver',
    script: 'stack/event-receiver.ts',
    root,
    logFile: join(suite.workDir, 'event-receiver.log'),
    env: { ...process.env, EVENT_RECEIVER_PORT: String(port) },
  });
  s.receiverUrl = `http://127.0.0.1:${port}`;
  const summaryUrl = `${s.receiverUrl}/_receiver/summary`;
  await waitUntilReady(s.receiver, () => answersOk(summaryUrl, 5_000), 60_000);
  const created = await adminCall(apiUrls, config.adminToken, 'POST', '/api/admin/webhook-endpoints', {
    url: `${s.receiverUrl}/hooks`,
    description: `chaos ${NAME}`,
  });
  if (created.status !== 201) throw new Error(`the endpoint was not made: ${created.status} ${created.text}`);
  const made = JSON.parse(created.text) as { endpoint: { endpointId: string }; secret: string };
  s.endpointId = made.endpoint.endpointId;
  const told = await httpCall('POST', `${s.receiverUrl}/_receiver/secrets`, {
    json: [made.secret],
    timeoutMs: 10_000,
  });
  if (!isOk(told))
    throw new Error(`the receiver did not take the secret: ${told.failure ? told.failure.message : told.status}`);
  suite.say(`receiver (pid ${s.receiver.pid}) at ${s.receiverUrl}; endpoint ${s.endpointId}`);
});

const arrange = step<EventsSale>('arrange', async (s) => {
  const { suite, p } = s;
  s.sku = skuOf('events');
  await suite.sales.create({ sku: s.sku, name: s.sku, priceCents: PRICE_CENTS, stock: p.stock, perUserLimit: 1 });
  // Open loop: a shopper arrives on time whatever the others wait for.
  s.plan = trafficPlan(suite, {
    sku: s.sku,
    shoppers: p.shoppers,
    concurrency: p.shoppers,
    arrivalsPerSecond: p.arrivalsPerSecond,
  });
});

const startTraffic = step<EventsSale>('start traffic', async (s) => {
  s.t0 = Date.now();
  s.traffic = runTraffic(s.plan);
});

/** `faultAfterMs` in, the receiver SIGSTOPped: the sender's attempts time out. */
const injectFault = step<EventsSale>('inject fault', async (s) => {
  const { suite, p } = s;
  const receiver = s.receiver!;
  await sleepUntil(s.t0 + p.faultAfterMs);
  s.deliveredAtFreeze = await deliveriesOf(suite.stores, s.endpoint);
  await freezeGroup(receiver.pid);
  s.freezeAt = Date.now();
  s.faultAt = s.freezeAt;
  suite.say(
    `SIGSTOP event-receiver (pid ${receiver.pid}) for ${p.freezeMs / 1_000} s; ${s.deliveredAtFreeze.filter((d) => d.status === 'DELIVERED').length} events delivered so far`,
  );
});

/** Into the freeze, the worker SIGKILLed (as worker-kill) with a delivery round's attempts hanging; back after. */
const killWorker = step<EventsSale>('kill the worker', async (s) => {
  const { suite, p } = s;
  const { worker } = suite.targets;
  await sleepUntil(s.freezeAt + p.killAfterFreezeMs);
  // The kill lands on a round in flight (its attempts hanging on the receiver): the worst moment to lose it.
  s.roundInFlightAtKill = await waitFor(() => roundInFlight(suite.temporal, s.endpoint), {
    what: 'a delivery round in flight',
    timeoutMs: p.freezeMs - p.killAfterFreezeMs - 5_000,
    intervalMs: 100,
    retryErrors: true,
  }).catch(() => false);
  const killedPid = worker.process?.pid;
  s.killAt = Date.now();
  kill(worker, suite.say);
  await waitFor(
    async () => (await worker.running()).pid !== killedPid && (await answersOk(suite.workerHealthUrl, 5_000)),
    {
      what: 'the worker back',
      timeoutMs: 90_000,
      intervalMs: 200,
      retryErrors: true,
    },
  );
  s.workerBackAt = Date.now();
  suite.say(`worker back ${((s.workerBackAt - s.killAt) / 1_000).toFixed(1)} s after the kill`);
});

const heal = step<EventsSale>('heal', async (s) => {
  await sleepUntil(s.freezeAt + s.p.freezeMs);
  signalGroup(s.receiver!.pid, 'SIGCONT');
  s.thawAt = Date.now();
  s.suite.say('SIGCONT event-receiver');
});

const checkoutsDone = step<EventsSale>('checkouts done', async (s) => {
  await s.traffic.checkoutsDone;
});

const trafficDone = step<EventsSale>('traffic done', async (s) => {
  s.result = await s.traffic.done;
  const burstSeconds = (Date.now() - s.t0) / 1_000;
  s.seconds.burst = round1(burstSeconds);
  s.accepted = acceptedOf(s.result);
  s.suite.say(
    `traffic done in ${burstSeconds.toFixed(1)} s: ${s.accepted.length} accepted; waiting for the sale to be quiet`,
  );
});

/** Every event of the sale's orders (whose 202 was lost too), and nothing of the endpoint still owed. */
const everyEventDelivered = step<EventsSale>('every event delivered', async (s) => {
  const { stores } = s.suite;
  s.orderNos = [...new Set([...s.accepted, ...(await stores.reports.orderNumbersOfSale(s.sku))])];
  const waitFrom = Date.now();
  const delivered = await waitFor(
    async () => {
      const events = await eventsOfOrders(stores, s.orderNos);
      const deliveries = await deliveriesOf(stores, s.endpoint);
      const byId = new Map(deliveries.map((d) => [d.eventId, d]));
      const done =
        events.every((e) => byId.get(e.eventId)?.status === 'DELIVERED') &&
        deliveries.every((d) => d.status !== 'PENDING');
      return done ? { events, deliveries } : false;
    },
    { what: 'every event delivered', timeoutMs: s.p.deliveredWithinMs, intervalMs: 500, retryErrors: true },
  ).catch(() => undefined);
  s.settledSeconds = (Date.now() - waitFrom) / 1_000;
  s.events = delivered?.events ?? (await eventsOfOrders(stores, s.orderNos));
  s.deliveries = delivered?.deliveries ?? (await deliveriesOf(stores, s.endpoint));
  s.summary = await receiverSummary(s.receiverUrl);
});

/** The round's own checks (EVENTS_CHECKS), from MySQL and the receiver, and its figures. */
const checkEvents = step<EventsSale>('check the events', async (s) => {
  const { stores, temporal } = s.suite;
  const { events, deliveries, summary, orderNos, freezeAt, thawAt, killAt } = s;
  const rows = await stores.orders.getOrders(orderNos);
  const attempts = await attemptsOfEvents(stores, s.endpoint, deliveries);
  const judged = judge({
    orderNos,
    statusOf: (orderNo) => rows.get(orderNo)?.status ?? 'NO ROW',
    events,
    deliveries,
    summary,
  });
  const byId = new Map(deliveries.map((d) => [d.eventId, d]));
  const roundDeliveries = events.flatMap((e) => byId.get(e.eventId) ?? []);
  const deliveredAt = (list: readonly OrderEventRow[]) =>
    list.flatMap((e) => {
      const at = byId.get(e.eventId)?.deliveredAt?.getTime();
      return at === undefined ? [] : [at];
    });
  const lastDelivered = (list: readonly OrderEventRow[]) => {
    const times = deliveredAt(list);
    return times.length === list.length && times.length > 0 ? round1((Math.max(...times) - thawAt) / 1_000) : null;
  };
  const createdBeforeThaw = events.filter((e) => e.createdAt.getTime() <= thawAt);
  // By when each attempt began (attempted_at is stamped once it ended): those the frozen receiver met.
  const frozenAttempts = [...attempts.values()].flat().filter((a) => {
    const began = a.attemptedAt.getTime() - (a.durationMs ?? 0);
    return began >= freezeAt && began < thawAt;
  });
  const figures = {
    endpointId: s.endpointId,
    timings: {
      frozenSeconds: round1((thawAt - freezeAt) / 1_000),
      workerKilledSecondsIntoFreeze: round1((killAt - freezeAt) / 1_000),
      roundInFlightAtKill: s.roundInFlightAtKill,
      workerBackSecondsAfterKill: round1((s.workerBackAt - killAt) / 1_000),
      // By MySQL's delivered_at: from the thaw until the last of them was delivered.
      secondsFromThawUntilEveryEventDelivered: lastDelivered(events),
      secondsFromThawUntilEveryEventMadeBeforeThawDelivered: lastDelivered(createdBeforeThaw),
      waitedAfterQuietSeconds: round1(s.settledSeconds),
    },
    orders: countBy(orderNos.map((orderNo) => rows.get(orderNo)?.status ?? 'NO ROW')),
    events: {
      total: events.length,
      byType: countBy(events.map((e) => e.type)),
      madeDuringFreeze: events.filter((e) => e.createdAt.getTime() >= freezeAt && e.createdAt.getTime() < thawAt)
        .length,
      madeBeforeThaw: createdBeforeThaw.length,
    },
    // The ids themselves are checked above, not kept.
    receiver: { ...summary, acceptedIds: undefined },
    // The receiver's own clock from the event's `created` to its first acceptance (every event it accepted).
    delayMs: { p99: summary.delayMs?.p99 ?? null, worst: summary.delayMs?.max ?? null },
    // By MySQL: from the event's `created` to its delivery recorded (the sender's view), the sale's events.
    deliveredDelayMs: percentiles(
      events.flatMap((e) => {
        const at = byId.get(e.eventId)?.deliveredAt?.getTime();
        return at === undefined ? [] : [at - e.createdAt.getTime()];
      }),
    ),
    deliveries: {
      endpoint: countBy(deliveries.map((d) => d.status)),
      ofOtherOrders: deliveries.length - roundDeliveries.length,
    },
    attemptsPerEvent: percentiles(roundDeliveries.map((d) => d.attempts)),
    attemptsByOutcome: countBy([...attempts.values()].flat().map((a) => attemptLabel(a))),
    attemptsStartedDuringFreeze: countBy(frozenAttempts.map((a) => attemptLabel(a))),
    deliveryRounds: await deliveryRounds(temporal, s.endpoint, freezeAt),
  };
  s.section = { checks: judged.checks, figures, violations: judged.violations };
});

export const eventsReceiverFreezeWorkerKill = defineRound<EventsSale>({
  name: NAME,
  faults: "the merchant's event receiver frozen 20 s mid-sale, the worker SIGKILLed mid-delivery meanwhile",
  needs: { env: EVENTS_ROUND_ENV },
  checks: [...CHAOS_CHECKS, ...EVENTS_CHECKS],
  recordedPlan: (settings) => ({
    paymentWindow: settings.paymentWindow,
    eventsRound: EVENTS_PLAN,
    eventsEnv: EVENTS_ROUND_ENV,
  }),
  state: (suite: Suite) => new EventsSale(suite),
  steps: [
    startReceiver,
    arrange,
    startTraffic,
    injectFault,
    killWorker,
    heal,
    checkoutsDone,
    waitForStoresToAgree,
    trafficDone,
    waitForQuiet,
    everyEventDelivered,
    checkEvents,
    checkInvariants,
  ],
  cleanup: async (s) => {
    const { suite } = s;
    // Owed nothing more: the suite's later rounds deliver to no one.
    if (s.endpointId)
      await adminCall(suite.apiUrls, suite.config.adminToken, 'PATCH', `/api/admin/webhook-endpoints/${s.endpointId}`, {
        enabled: false,
      }).catch((err: unknown) => suite.say(`the endpoint ${s.endpointId} was not disabled: ${String(err)}`));
    if (s.receiver) {
      signalGroup(s.receiver.pid, 'SIGCONT');
      await s.receiver.stop(5_000);
    }
  },
  outcome: (s) => {
    if (!s.section) throw new Error(`${NAME} judged nothing`);
    return { ...s.outcomeBase(), events: s.section };
  },
});

/** The round's checks, from what MySQL and the receiver hold once every event was waited for. */
function judge(input: {
  orderNos: readonly string[];
  statusOf: (orderNo: string) => string;
  events: readonly OrderEventRow[];
  deliveries: readonly DeliveryRow[];
  summary: ReceiverSummary;
}): { checks: Record<EventsCheck, boolean>; violations: string[] } {
  const { orderNos, statusOf, events, deliveries, summary } = input;
  const found: Record<EventsCheck, string[]> = {
    everyEventDelivered: [],
    everyEventAccepted: [],
    typesMatchOrders: [],
    noUnverifiedRequest: [],
    noDeliveryGaveUp: [],
  };
  const byId = new Map(deliveries.map((d) => [d.eventId, d]));
  for (const event of events) {
    const delivery = byId.get(event.eventId);
    if (delivery?.status !== 'DELIVERED')
      found.everyEventDelivered.push(
        `${event.eventId}: ${delivery ? `${delivery.status} after ${delivery.attempts} attempts (${delivery.lastError ?? delivery.lastStatus})` : 'never queued for the endpoint'}`,
      );
  }
  for (const d of deliveries.filter((x) => x.status === 'PENDING'))
    found.everyEventDelivered.push(`${d.eventId} (not of the sale): still PENDING after ${d.attempts} attempts`);

  const delivered = deliveries.filter((d) => d.status === 'DELIVERED');
  const deliveredByType = countBy(delivered.map((d) => d.type));
  // Id by id: the receiver accepted exactly the events the endpoint has DELIVERED (repeats deduplicated, counted).
  const acceptedIds = new Set(summary.acceptedIds);
  for (const d of delivered)
    if (!acceptedIds.has(d.eventId)) found.everyEventAccepted.push(`${d.eventId}: DELIVERED, never accepted`);
  const deliveredIds = new Set(delivered.map((d) => d.eventId));
  for (const id of acceptedIds)
    if (!deliveredIds.has(id)) found.everyEventAccepted.push(`${id}: accepted, not DELIVERED to the endpoint`);
  for (const type of new Set([...Object.keys(deliveredByType), ...Object.keys(summary.byType)]))
    if ((deliveredByType[type] ?? 0) !== (summary.byType[type] ?? 0))
      found.everyEventAccepted.push(
        `${type}: ${summary.byType[type] ?? 0} accepted by the receiver, ${deliveredByType[type] ?? 0} DELIVERED`,
      );

  const eventsByOrder = new Map<string, OrderEventType[]>();
  for (const event of events)
    eventsByOrder.set(event.order.orderNo, [...(eventsByOrder.get(event.order.orderNo) ?? []), event.type]);
  for (const orderNo of orderNos) {
    const status = statusOf(orderNo);
    const types = eventsByOrder.get(orderNo) ?? [];
    const final = types.filter((t) => FINAL_TYPES.includes(t)).sort();
    const expected = FINAL_EVENTS[status];
    if (!expected?.some((allowed) => sameList(allowed, final)))
      found.typesMatchOrders.push(`${orderNo} (${status}): events ${JSON.stringify(types)}`);
  }

  if (summary.unverified > 0)
    found.noUnverifiedRequest.push(`${summary.unverified} requests the receiver could not verify`);
  for (const d of deliveries.filter((x) => x.status === 'GAVE_UP'))
    found.noDeliveryGaveUp.push(`${d.eventId}: GAVE_UP after ${d.attempts} attempts (${d.lastError ?? d.lastStatus})`);

  const checks = Object.fromEntries(EVENTS_CHECKS.map((c) => [c, found[c].length === 0])) as Record<
    EventsCheck,
    boolean
  >;
  const violations = EVENTS_CHECKS.flatMap((c) => found[c].slice(0, 20).map((line) => `${c}: ${line}`));
  return { checks, violations };
}

/** The events that end an order; each final status has its own, once (a FAILED order may have been paid first). */
const FINAL_TYPES: readonly OrderEventType[] = ['order.paid', 'order.cancelled', 'order.failed'];
const FINAL_EVENTS: Record<string, ReadonlyArray<readonly OrderEventType[]>> = {
  PAID: [['order.paid']],
  CANCELLED: [['order.cancelled']],
  FAILED: [['order.failed'], ['order.failed', 'order.paid']],
};

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().every((x, i) => x === b[i]);

/** Every event of the orders, from the feed's table (order_events), sixteen orders at a time. */
async function eventsOfOrders(stores: Stores, orderNos: readonly string[]): Promise<OrderEventRow[]> {
  const events: OrderEventRow[] = [];
  for (let i = 0; i < orderNos.length; i += 16)
    events.push(...(await Promise.all(orderNos.slice(i, i + 16).map((o) => stores.events.eventsOf(o)))).flat());
  return events;
}

/** Every delivery the endpoint was owed, whatever its status (newest first, page by page). */
async function deliveriesOf(stores: Stores, endpointId: string): Promise<DeliveryRow[]> {
  const all: DeliveryRow[] = [];
  for (let beforeSeq: number | undefined; ;) {
    const page = await stores.webhooks.deliveriesPage(endpointId, { ...(beforeSeq ? { beforeSeq } : {}), limit: 500 });
    all.push(...page);
    if (page.length < 500) return all;
    beforeSeq = page[page.length - 1]?.seq;
  }
}

/** Each delivery's attempts (webhook_attempts), by event id. */
async function attemptsOfEvents(
  stores: Stores,
  endpointId: string,
  deliveries: readonly DeliveryRow[],
): Promise<Map<string, AttemptRow[]>> {
  const found = new Map<string, AttemptRow[]>();
  for (let i = 0; i < deliveries.length; i += 16)
    await Promise.all(
      deliveries
        .slice(i, i + 16)
        .map(async (d) => found.set(d.eventId, await stores.webhooks.attemptsOf(endpointId, d.seq, 1_000))),
    );
  return found;
}

/** Whether the endpoint's delivery workflow has a round (its activity) started on a worker now. */
async function roundInFlight(temporal: Client, endpointId: string): Promise<boolean> {
  const described = await temporal.workflow.getHandle(endpointDeliveryWorkflowId(endpointId)).describe();
  return (described.raw.pendingActivities ?? []).some(
    (activity) => activity.state === proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
  );
}

/**
 * The endpoint's delivery rounds (deliverEndpointEvents) in its workflow's histories: how many, the longest from
 * scheduled to closed, those that ran more than once (a worker killed mid-round leaves its round to the heartbeat
 * timeout) and why, the workflow tasks that timed out (on the killed worker), and every pause of more than 3 s
 * between rounds; times in seconds from the freeze.
 */
async function deliveryRounds(
  temporal: Client,
  endpointId: string,
  freezeAt: number,
): Promise<
  | {
      runs: number;
      rounds: number;
      longestSeconds: number;
      retried: string[];
      workflowTasksTimedOutAt: number[];
      pausesFromFreeze: string[];
    }
  | { error: string }
> {
  const ms = (ts: { seconds?: { toString(): string } | null; nanos?: number | null } | null | undefined) =>
    ts ? Number(ts.seconds?.toString() ?? 0) * 1_000 + Math.floor((ts.nanos ?? 0) / 1e6) : 0;
  const fromFreeze = (at: number) => round1((at - freezeAt) / 1_000);
  try {
    const id = endpointDeliveryWorkflowId(endpointId);
    let runs = 0;
    let longestMs = 0;
    const retried: string[] = [];
    const timedOut: number[] = [];
    const roundTimes: Array<{ scheduled: number; closed: number }> = [];
    for await (const run of temporal.workflow.list({ query: `WorkflowId = '${id}'` })) {
      runs++;
      const history = await temporal.workflow.getHandle(id, run.runId).fetchHistory();
      const scheduledAt = new Map<string, number>();
      for (const event of history.events ?? []) {
        const at = ms(event.eventTime);
        if (event.activityTaskScheduledEventAttributes) scheduledAt.set(String(event.eventId ?? ''), at);
        if (event.workflowTaskTimedOutEventAttributes) timedOut.push(fromFreeze(at));
        const started = event.activityTaskStartedEventAttributes;
        if (started && (started.attempt ?? 1) > 1)
          retried.push(`attempt ${started.attempt} at ${fromFreeze(at)} s: ${started.lastFailure?.message ?? '?'}`);
        const closed =
          event.activityTaskCompletedEventAttributes ??
          event.activityTaskFailedEventAttributes ??
          event.activityTaskTimedOutEventAttributes;
        const from = closed ? scheduledAt.get(String(closed.scheduledEventId ?? '')) : undefined;
        if (from === undefined) continue;
        longestMs = Math.max(longestMs, at - from);
        roundTimes.push({ scheduled: from, closed: at });
      }
    }
    roundTimes.sort((a, b) => a.scheduled - b.scheduled);
    const pauses = roundTimes.slice(1).flatMap((r, i) => {
      const previous = roundTimes[i]!;
      return r.scheduled - previous.closed > 3_000
        ? [`${fromFreeze(previous.closed)} s to ${fromFreeze(r.scheduled)} s`]
        : [];
    });
    const slow = roundTimes.flatMap((r) =>
      r.closed - r.scheduled > 3_000 ? [`round ${fromFreeze(r.scheduled)} s to ${fromFreeze(r.closed)} s`] : [],
    );
    return {
      runs,
      rounds: roundTimes.length,
      longestSeconds: round1(longestMs / 1_000),
      retried: retried.slice(0, 10),
      workflowTasksTimedOutAt: timedOut,
      pausesFromFreeze: [...pauses, ...slow].slice(0, 20),
    };
  } catch (err) {
    return { error: String(err) };
  }
}

/** An attempt by what became of it: its outcome, and for a failure its status or why (a timeout, a refusal). */
function attemptLabel(attempt: AttemptRow): string {
  if (attempt.outcome === 'delivered') return 'delivered';
  const why = attempt.httpStatus ?? attempt.error?.split(/[:(]/)[0]?.trim().slice(0, 40) ?? 'unknown';
  return `${attempt.outcome} ${why}`;
}

async function receiverSummary(url: string): Promise<ReceiverSummary> {
  const answer = await httpCall('GET', `${url}/_receiver/summary`, { timeoutMs: 10_000 });
  if (!isOk(answer))
    throw new Error(`the receiver's summary answered ${answer.failure ? answer.failure.message : answer.status}`);
  return answer.json as ReceiverSummary;
}

/** An admin request through the first API, once: the stack is healthy then (before the sale, once it is quiet). */
async function adminCall(
  apiUrls: readonly string[],
  adminToken: string,
  method: 'POST' | 'PATCH',
  path: string,
  body: unknown,
): Promise<{ status: number; text: string }> {
  const answer = await httpCall(method, `${apiUrls[0]}${path}`, {
    headers: { authorization: `Bearer ${adminToken}` },
    json: body,
    timeoutMs: 10_000,
  });
  // No answer throws, so that the cleanup's catch says the endpoint was not disabled.
  if (answer.failure) throw new Error(`${method} ${path}: ${answer.failure.message}`);
  return { status: answer.status, text: answer.body };
}

function percentiles(values: number[]): { min: number; p50: number; p99: number; max: number; mean: number } | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    min: sorted[0] ?? 0,
    p50: at(0.5),
    p99: at(0.99),
    max: sorted[sorted.length - 1] ?? 0,
    mean: round1(sorted.reduce((sum, v) => sum + v, 0) / sorted.length),
  };
}
