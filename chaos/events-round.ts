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
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { ShopperAuth } from '../src/api/auth.js';
import type { AppConfig } from '../src/config/index.js';
import type { OrderEventRow } from '../src/db/events.js';
import type { Stores } from '../src/db/stores.js';
import type { AttemptRow, DeliveryRow } from '../src/db/webhooks.js';
import type { RedisClient } from '../src/infra/redis.js';
import type { RedisInventory } from '../src/inventory/redis-inventory.js';
import type { OrderEventType } from '../src/model/order-workflow.js';
import { endpointDeliveryWorkflowId } from '../src/events/delivery-definitions.js';
import type { OrderWorkflowClient } from '../src/order/workflow-client.js';
import type { SalesService } from '../src/sales/sales-service.js';
import type { ReceiverSummary } from '../stack/event-receiver.js';
import { freePort, freezeGroup, signalGroup, spawnLogged, waitUntilReady } from '../stack/process.js';
import type { Supervised } from '../stack/supervisor.js';
import { waitFor } from '../stack/wait-for.js';
import {
  CHAOS_CHECKS,
  checkAfterFault,
  countBy,
  waitForQuiescence,
  waitForRepair,
  type ChaosVerdict,
} from './checks.js';
import { runTraffic, sameKeySameOrder, type TrafficPlan } from './shoppers.js';

/** The round's name in the fault list and the results file. */
export const EVENTS_ROUND = 'events-receiver-freeze-worker-kill';

export const EVENTS_CHECKS = [
  'everyEventDelivered',
  'everyEventAccepted',
  'typesMatchOrders',
  'noUnverifiedRequest',
  'noDeliveryGaveUp',
] as const;
export type EventsCheck = (typeof EVENTS_CHECKS)[number];

/**
 * The worker's sender in this suite (chaos/run.ts adds them when the round runs): loopback allowed (the receiver), a
 * short first retry and attempt timeout, so the round's deliveries catch up within its bound.
 */
export const EVENTS_ROUND_ENV: Record<string, string> = {
  EVENTS_ALLOWED_RANGES: '127.0.0.0/8,::1/128',
  EVENTS_RETRY_FIRST: '500ms',
  EVENTS_POLL_INTERVAL: '1s',
  EVENTS_ATTEMPT_TIMEOUT_MS: '2000',
};

export interface EventsPlan {
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

export const EVENTS_PLAN: EventsPlan = {
  shoppers: 240,
  stock: 260,
  arrivalsPerSecond: 8,
  faultAfterMs: 5_000,
  freezeMs: 20_000,
  killAfterFreezeMs: 3_000,
  deliveredWithinMs: 120_000,
};

export interface EventsRoundDeps {
  stores: Stores;
  redis: RedisClient;
  inventory: RedisInventory;
  temporal: Client;
  sales: SalesService;
  orders: OrderWorkflowClient;
  auth: ShopperAuth;
  config: AppConfig;
  apiUrls: string[];
  /** Where the receiver's log goes (the suite's work directory). */
  logDir: string;
  /** SIGKILLs the worker (the suite's worker-kill); its supervisor starts it again. */
  killWorker(): Promise<unknown>;
  worker: Supervised;
  /** The worker's /readyz: the restarted worker is waited for until it answers 200. */
  workerHealthUrl: string;
  quiescenceTimeoutMs: number;
  say(line: string): void;
}

export interface EventsRoundResult {
  ok: boolean;
  violated: string[];
  verdict: ChaosVerdict;
  seconds: { burst: number; storesAgreeAfterFault: number; quiet: number };
  events: { checks: Record<EventsCheck, boolean>; figures: Record<string, unknown>; violations: string[] };
}

const root = resolve(import.meta.dirname, '..');

export async function eventsReceiverFreezeWorkerKillRound(
  deps: EventsRoundDeps,
  p: EventsPlan = EVENTS_PLAN,
): Promise<EventsRoundResult> {
  const { stores, redis, inventory, temporal, sales, auth, config, apiUrls, say } = deps;
  const checkDeps = { stores, redis, inventory, temporal };
  if (p.killAfterFreezeMs >= p.freezeMs) throw new Error('the worker must be killed while the receiver is frozen');

  // Before the sale: the receiver as a process of its own, and an endpoint on it made as an admin makes one.
  const port = await freePort();
  const receiver = spawnLogged(
    'event-receiver',
    join(root, 'node_modules', '.bin', 'tsx'),
    ['stack/event-receiver.ts'],
    {
      logFile: join(deps.logDir, 'event-receiver.log'),
      cwd: root,
      env: { ...process.env, EVENT_RECEIVER_PORT: String(port) },
    },
  );
  const receiverUrl = `http://127.0.0.1:${port}`;
  let endpointId: string | undefined;
  try {
    await waitUntilReady(receiver, async () => (await fetch(`${receiverUrl}/_receiver/summary`)).ok, 60_000);
    const created = await adminCall(apiUrls, config.adminToken, 'POST', '/api/admin/webhook-endpoints', {
      url: `${receiverUrl}/hooks`,
      description: `chaos ${EVENTS_ROUND}`,
    });
    if (created.status !== 201) throw new Error(`the endpoint was not made: ${created.status} ${created.text}`);
    const made = JSON.parse(created.text) as { endpoint: { endpointId: string }; secret: string };
    endpointId = made.endpoint.endpointId;
    const told = await fetch(`${receiverUrl}/_receiver/secrets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([made.secret]),
    });
    if (!told.ok) throw new Error(`the receiver did not take the secret: ${told.status}`);
    say(`receiver (pid ${receiver.pid}) at ${receiverUrl}; endpoint ${endpointId}`);

    // The sale, with the faults mid-way.
    const sku = `CHAOS-EVENTS-${Date.now().toString(36)}`;
    const priceCents = 1_500;
    await sales.create({ sku, name: sku, priceCents, stock: p.stock, perUserLimit: 1 });
    const plan: TrafficPlan = {
      sku,
      priceCents,
      shoppers: p.shoppers,
      // Open loop: a shopper arrives on time whatever the others wait for.
      concurrency: p.shoppers,
      arrivalsPerSecond: p.arrivalsPerSecond,
      apiUrls,
      tokenFor: (userId) => auth.issue(userId),
      webhookSecret: config.webhookSecret,
      paymentWindowMs: config.paymentWindowMs,
      retryForMs: 60_000,
    };
    const t0 = Date.now();
    const traffic = runTraffic(plan);
    await sleep(Math.max(0, t0 + p.faultAfterMs - Date.now()));
    const deliveredAtFreeze = await deliveriesOf(stores, endpointId);
    await freezeGroup(receiver.pid);
    const freezeAt = Date.now();
    say(
      `SIGSTOP event-receiver (pid ${receiver.pid}) for ${p.freezeMs / 1_000} s; ${deliveredAtFreeze.filter((d) => d.status === 'DELIVERED').length} events delivered so far`,
    );
    let thawAt: number | undefined;
    try {
      await sleep(Math.max(0, freezeAt + p.killAfterFreezeMs - Date.now()));
      // The kill lands on a round in flight (its attempts hanging on the receiver): the worst moment to lose it.
      const roundInFlightAtKill = await waitFor(() => roundInFlight(temporal, endpointId!), {
        what: 'a delivery round in flight',
        timeoutMs: p.freezeMs - p.killAfterFreezeMs - 5_000,
        intervalMs: 100,
        retryErrors: true,
      }).catch(() => false);
      const killedPid = deps.worker.process?.pid;
      const killAt = Date.now();
      await deps.killWorker();
      await waitFor(
        async () => (await deps.worker.running()).pid !== killedPid && (await fetch(deps.workerHealthUrl)).ok,
        { what: 'the worker back', timeoutMs: 90_000, intervalMs: 200, retryErrors: true },
      );
      const workerBackAt = Date.now();
      say(`worker back ${((workerBackAt - killAt) / 1_000).toFixed(1)} s after the kill`);
      await sleep(Math.max(0, freezeAt + p.freezeMs - Date.now()));
      signalGroup(receiver.pid, 'SIGCONT');
      thawAt = Date.now();
      say('SIGCONT event-receiver');

      await traffic.checkoutsDone;
      const repairedSeconds = await waitForRepair(checkDeps, sku, freezeAt, deps.quiescenceTimeoutMs, deps.orders);
      const result = await traffic.done;
      const burstSeconds = (Date.now() - t0) / 1_000;
      const accepted = result.intents.flatMap((i) => (i.answer.kind === 'accepted' ? [i.answer.orderNo] : []));
      say(
        `traffic done in ${burstSeconds.toFixed(1)} s: ${accepted.length} accepted; waiting for the sale to be quiet`,
      );
      const quietSeconds = await waitForQuiescence(checkDeps, sku, accepted, deps.quiescenceTimeoutMs);

      // Every event of the sale's orders (whose 202 was lost too), and nothing of the endpoint still owed.
      const orderNos = [...new Set([...accepted, ...(await stores.reports.orderNumbersOfSale(sku))])];
      const waitFrom = Date.now();
      const delivered = await waitFor(
        async () => {
          const events = await eventsOfOrders(stores, orderNos);
          const deliveries = await deliveriesOf(stores, endpointId!);
          const byId = new Map(deliveries.map((d) => [d.eventId, d]));
          const done =
            events.every((e) => byId.get(e.eventId)?.status === 'DELIVERED') &&
            deliveries.every((d) => d.status !== 'PENDING');
          return done ? { events, deliveries } : false;
        },
        { what: 'every event delivered', timeoutMs: p.deliveredWithinMs, intervalMs: 500, retryErrors: true },
      ).catch(() => undefined);
      const settledSeconds = (Date.now() - waitFrom) / 1_000;
      const events = delivered?.events ?? (await eventsOfOrders(stores, orderNos));
      const deliveries = delivered?.deliveries ?? (await deliveriesOf(stores, endpointId));
      const summary = await receiverSummary(receiverUrl);
      const rows = await stores.orders.getOrders(orderNos);
      const attempts = await attemptsOfEvents(stores, endpointId, deliveries);

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
        return times.length === list.length && times.length > 0 ? round((Math.max(...times) - thawAt!) / 1_000) : null;
      };
      const createdBeforeThaw = events.filter((e) => e.createdAt.getTime() <= thawAt!);
      // By when each attempt began (attempted_at is stamped once it ended): those the frozen receiver met.
      const frozenAttempts = [...attempts.values()].flat().filter((a) => {
        const began = a.attemptedAt.getTime() - (a.durationMs ?? 0);
        return began >= freezeAt && began < thawAt!;
      });
      const figures = {
        endpointId,
        timings: {
          frozenSeconds: round((thawAt - freezeAt) / 1_000),
          workerKilledSecondsIntoFreeze: round((killAt - freezeAt) / 1_000),
          roundInFlightAtKill,
          workerBackSecondsAfterKill: round((workerBackAt - killAt) / 1_000),
          // By MySQL's delivered_at: from the thaw until the last of them was delivered.
          secondsFromThawUntilEveryEventDelivered: lastDelivered(events),
          secondsFromThawUntilEveryEventMadeBeforeThawDelivered: lastDelivered(createdBeforeThaw),
          waitedAfterQuietSeconds: round(settledSeconds),
        },
        orders: countBy(orderNos.map((orderNo) => rows.get(orderNo)?.status ?? 'NO ROW')),
        events: {
          total: events.length,
          byType: countBy(events.map((e) => e.type)),
          madeDuringFreeze: events.filter((e) => e.createdAt.getTime() >= freezeAt && e.createdAt.getTime() < thawAt!)
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
        deliveryRounds: await deliveryRounds(temporal, endpointId, freezeAt),
      };
      const verdict = await checkAfterFault(checkDeps, sku, 1, result, new Date(t0), () =>
        sameKeySameOrder(plan, result),
      );
      const violated = [
        ...CHAOS_CHECKS.filter((c) => !verdict.checks[c]),
        ...EVENTS_CHECKS.filter((c) => !judged.checks[c]),
      ];
      return {
        ok: violated.length === 0,
        violated,
        verdict,
        seconds: {
          burst: round(burstSeconds),
          storesAgreeAfterFault: round(repairedSeconds),
          quiet: round(quietSeconds),
        },
        events: { checks: judged.checks, figures, violations: judged.violations },
      };
    } finally {
      if (thawAt === undefined) signalGroup(receiver.pid, 'SIGCONT');
    }
  } finally {
    // Owed nothing more: the suite's later rounds deliver to no one.
    if (endpointId)
      await adminCall(apiUrls, config.adminToken, 'PATCH', `/api/admin/webhook-endpoints/${endpointId}`, {
        enabled: false,
      }).catch((err: unknown) => say(`the endpoint ${endpointId} was not disabled: ${String(err)}`));
    signalGroup(receiver.pid, 'SIGCONT');
    await receiver.stop(5_000);
  }
}

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
  const fromFreeze = (at: number) => round((at - freezeAt) / 1_000);
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
      longestSeconds: round(longestMs / 1_000),
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
  const answer = await fetch(`${url}/_receiver/summary`, { signal: AbortSignal.timeout(10_000) });
  if (!answer.ok) throw new Error(`the receiver's summary answered ${answer.status}`);
  return (await answer.json()) as ReceiverSummary;
}

/** An admin request through the first API, once: the stack is healthy then (before the sale, once it is quiet). */
async function adminCall(
  apiUrls: readonly string[],
  adminToken: string,
  method: 'POST' | 'PATCH',
  path: string,
  body: unknown,
): Promise<{ status: number; text: string }> {
  const answer = await fetch(`${apiUrls[0]}${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: answer.status, text: await answer.text() };
}

const round = (value: number) => Math.round(value * 10) / 10;

function percentiles(values: number[]): { min: number; p50: number; p99: number; max: number; mean: number } | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    min: sorted[0] ?? 0,
    p50: at(0.5),
    p99: at(0.99),
    max: sorted[sorted.length - 1] ?? 0,
    mean: round(sorted.reduce((sum, v) => sum + v, 0) / sorted.length),
  };
}
