/**
 * The fault suite's waiting-line round, line-redis-freeze-api-kill (issue 49): a sale with a line, Redis frozen and an
 * API killed while shoppers wait in it. Places must survive, and nobody may be admitted twice.
 *
 *   sale     `stock` units, limit 1, a line admitting `admissionsPerSecond` (admissions last `admissionTtlSeconds`),
 *            starting `startsAfterMs` after the first shopper arrives: those who join before the start wait in the
 *            pre-queue, ranked at the start by the line's seed; the rest come after it, first come first served
 *   shoppers `shoppers` arrive at `arrivalsPerSecond`, each joins (through either API, retried on 5xx, 429 waited
 *            out), reads their place as Retry-After says, and once ADMITTED checks out with the Admission-Token and an
 *            Idempotency-Key (one in three with Prefer: wait=5), retried on 5xx; all but one in `unpaidEvery` then pay
 *            (the generic webhook), the others never do, so their units come back at the deadline and the line admits
 *            again. A shopper leaves once checked out, told sold out for good, or after `waitForMs` from the start
 *   faults   `faultAfterStartMs` into the admissions Redis is frozen (SIGSTOP) for `freezeMs`; `killAfterThawMs`
 *            after the thaw one API is SIGKILLed while the line is still being admitted, and its supervisor starts
 *            it again (its memory of the line and the places gone)
 *
 * Once the sale is quiet (waitForRepair, waitForQuiescence), beside the invariants every round checks (CHAOS_CHECKS:
 * no oversell, conservation, every 202 a row, the same key the same order, asked again without the admission):
 *   placesSurvived         every place Redis held just before the freeze is there after the faults, unchanged; no
 *                          shopper was ever told two positions (a join's answer, any read, through either API); and
 *                          every shopper with a place, read once more through each API after the sale is quiet (the
 *                          restarted one's memory is new), is told Redis's position: for a shopper who had a position
 *                          before the faults, that one
 *   placesDistinct         the positions Redis holds (the pre-queue's ranks, then the places taken after the start) are
 *                          exactly 1..length, one shopper each
 *   noShopperAdmittedTwice every admission a shopper was shown (the token's position) names their own place, one
 *                          position per shopper; at most one order per shopper (answered and in MySQL) besides
 *                          orders that FAILED (a failure of ours gives the admission back for another checkout);
 *                          `sale:{SKU}:line:used` holds one position per user, their own, no position twice; the line's
 *                          `consumed` equals the users in it, at least the sale's orders that did not fail and at
 *                          most all its orders
 *   admissionsWithinAdmitted the line's admissions spent never exceed those made: consumed + givenBack ≤ admitted =
 *                          servedThrough ≤ length, every spent position ≤ servedThrough
 *   everyAdmissionHonoured every checkout carrying an admission (retried with its key through the faults) ended as an
 *                          order: never 403, SOLD_OUT (an admission is made only for a unit available) or given up
 *   noInternalError        no join, read, checkout or webhook of the round was answered 500
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type { ShopperAuth } from '../src/api/auth.js';
import type { AppConfig } from '../src/config/index.js';
import type { Stores } from '../src/db/stores.js';
import type { RedisClient } from '../src/infra/redis.js';
import { saleKeys, type RedisInventory } from '../src/inventory/redis-inventory.js';
import type { PlaceView } from '../src/line/line-service.js';
import type { OrderWorkflowClient } from '../src/order/workflow-client.js';
import type { SalesService } from '../src/sales/sales-service.js';
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
import {
  retrying,
  sameKeySameOrder,
  sendPayment,
  type IntentOutcome,
  type TrafficPlan,
  type TrafficResult,
} from './shoppers.js';

/** The round's name in the fault list and the results file. */
export const LINE_ROUND = 'line-redis-freeze-api-kill';

export const LINE_CHECKS = [
  'placesSurvived',
  'placesDistinct',
  'noShopperAdmittedTwice',
  'admissionsWithinAdmitted',
  'everyAdmissionHonoured',
  'noInternalError',
] as const;
export type LineCheck = (typeof LINE_CHECKS)[number];

export interface LinePlan {
  shoppers: number;
  stock: number;
  admissionsPerSecond: number;
  /** Longer than the freeze and the kill: an admission made before them is still good after. */
  admissionTtlSeconds: number;
  /** The sale's start, after the first shopper arrives: the pre-queue fills until then. */
  startsAfterMs: number;
  arrivalsPerSecond: number;
  /** Redis is frozen this long after the start (admissions under way), for `freezeMs`. */
  faultAfterStartMs: number;
  freezeMs: number;
  /** One API is SIGKILLed this long after the thaw. */
  killAfterThawMs: number;
  /** One admitted shopper in `unpaidEvery` never pays: the unit comes back to the line at the deadline. */
  unpaidEvery: number;
  /** Shoppers stop waiting this long after the start. */
  waitForMs: number;
  /** How long a client retries one request through the faults. */
  retryForMs: number;
}

export const LINE_PLAN: LinePlan = {
  shoppers: 300,
  stock: 150,
  admissionsPerSecond: 20,
  admissionTtlSeconds: 60,
  startsAfterMs: 5_000,
  arrivalsPerSecond: 30,
  faultAfterStartMs: 3_000,
  freezeMs: 15_000,
  killAfterThawMs: 3_000,
  unpaidEvery: 4,
  waitForMs: 80_000,
  retryForMs: 60_000,
};

export interface LineRoundDeps {
  stores: Stores;
  redis: RedisClient;
  inventory: RedisInventory;
  temporal: Client;
  sales: SalesService;
  orders: OrderWorkflowClient;
  auth: ShopperAuth;
  config: AppConfig;
  /** The suite's two APIs; the first is the one killed. */
  apiUrls: string[];
  /** SIGSTOPs Redis for `ms`; `thawed` resolves at the SIGCONT, with its time (the suite's freeze). */
  freezeRedis(ms: number): Promise<{ thawed: Promise<number> } | undefined>;
  /** SIGKILLs the first API (its supervisor starts it again). */
  killApi(): Promise<unknown>;
  /** The first API's supervisor: the round waits for the process after the killed one to answer. */
  killedApi: Supervised;
  quiescenceTimeoutMs: number;
  say(line: string): void;
}

export interface LineRoundResult {
  ok: boolean;
  violated: string[];
  verdict: ChaosVerdict;
  seconds: { burst: number; storesAgreeAfterFault: number; quiet: number };
  line: { checks: Record<LineCheck, boolean>; figures: Record<string, unknown>; violations: string[] };
}

type LineKind = 'join' | 'read' | 'audit';

/** One HTTP attempt at the line's routes, as its client saw it. */
interface LineRequest {
  kind: LineKind;
  /** Which API (index into apiUrls). */
  api: number;
  sentAt: number;
  ms: number;
  outcome: number | 'timeout' | 'error';
  code?: string;
}

/** A position told to a shopper: by a join's answer, a read, or the audit after the round. */
interface Told {
  at: number;
  api: number;
  kind: LineKind;
  position: number;
}

interface Shopper {
  index: number;
  userId: string;
  token: string;
  pays: boolean;
  waited: boolean;
  /** When the join was first answered 200. */
  joinedAt?: number;
  told: Told[];
  /** The admissions shown (decoded from their tokens): the position each names. */
  admissions: Array<{ at: number; api: number; position: number; placePosition: number | null; expiresAtMs: number }>;
  states: string[];
  /** Why the shopper left the line. */
  left: string;
  intent?: IntentOutcome;
  problems: string[];
}

type LineCall =
  { status: number; body: unknown; api: number; retryAfter: number | null } | { status: 'gave-up'; lastError: string };

export async function lineRedisFreezeApiKillRound(
  deps: LineRoundDeps,
  p: LinePlan = LINE_PLAN,
): Promise<LineRoundResult> {
  const { stores, redis, inventory, temporal, sales, auth, config, apiUrls, say } = deps;
  const checkDeps = { stores, redis, inventory, temporal };
  if (p.admissionTtlSeconds * 1_000 <= p.freezeMs + p.killAfterThawMs + 20_000)
    throw new Error(`an admission (${p.admissionTtlSeconds} s) must outlast the freeze and the kill`);
  const sku = `CHAOS-LINE-${Date.now().toString(36)}`;
  const k = saleKeys(sku);
  const priceCents = 1_500;
  const t0 = Date.now();
  const startsMs = t0 + p.startsAfterMs;
  await sales.create({
    sku,
    name: sku,
    priceCents,
    stock: p.stock,
    perUserLimit: 1,
    startsAt: new Date(startsMs).toISOString(),
    line: { admissionsPerSecond: p.admissionsPerSecond, admissionTtlSeconds: p.admissionTtlSeconds },
  });
  const result: TrafficResult = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  const plan: TrafficPlan = {
    sku,
    priceCents,
    shoppers: p.shoppers,
    concurrency: p.shoppers,
    arrivalsPerSecond: p.arrivalsPerSecond,
    apiUrls,
    tokenFor: (userId) => auth.issue(userId),
    webhookSecret: config.webhookSecret,
    paymentWindowMs: config.paymentWindowMs,
    retryForMs: p.retryForMs,
  };
  const lineRequests: LineRequest[] = [];
  const runId = randomUUID().slice(0, 8);
  const stopWaitingAt = startsMs + p.waitForMs;
  const payments: Promise<unknown>[] = [];

  /** A line request through a random API (or `api`), retried on 5xx and errors with backoff, 429 waited out. */
  const lineCall = async (
    kind: LineKind,
    shopper: Shopper,
    method: 'GET' | 'POST',
    path: string,
    api?: number,
  ): Promise<LineCall> => {
    const deadline = Date.now() + p.retryForMs;
    let lastError = '';
    for (let delay = 200, attempt = 0; ; attempt++) {
      const at = api ?? (attempt + Math.floor(Math.random() * apiUrls.length)) % apiUrls.length;
      const sentAt = Date.now();
      const started = performance.now();
      let pause = delay;
      try {
        const response = await fetch(`${apiUrls[at]}${path}`, {
          method,
          headers: { authorization: `Bearer ${shopper.token}` },
          signal: AbortSignal.timeout(10_000),
        });
        const text = await response.text();
        const body = text ? (JSON.parse(text) as unknown) : undefined;
        const code = (body as { error?: { code?: string } } | undefined)?.error?.code;
        lineRequests.push({
          kind,
          api: at,
          sentAt,
          ms: performance.now() - started,
          outcome: response.status,
          ...(code ? { code } : {}),
        });
        const retryAfter = response.headers.get('retry-after');
        const retryAfterMs = retryAfter ? Number(retryAfter) * 1_000 : 0;
        if (response.status === 429) pause = Math.max(retryAfterMs, 1_000);
        else if (response.status < 500)
          return { status: response.status, body, api: at, retryAfter: retryAfter ? Number(retryAfter) : null };
        else {
          lastError = `${response.status} ${text.slice(0, 200)}`;
          delay = Math.min(delay * 2, 2_000);
          if (retryAfterMs > 0) pause = Math.min(Math.max(pause, retryAfterMs), 2_000);
        }
      } catch (err) {
        const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
        lineRequests.push({
          kind,
          api: at,
          sentAt,
          ms: performance.now() - started,
          outcome: timedOut ? 'timeout' : 'error',
        });
        lastError = err instanceof Error ? err.message : String(err);
        delay = Math.min(delay * 2, 2_000);
      }
      if (Date.now() + pause > deadline) return { status: 'gave-up', lastError };
      await sleep(pause);
    }
  };

  /** Records what a 200 answer told the shopper: the position, the state, the admission's position. */
  const observe = (shopper: Shopper, view: PlaceView, api: number, kind: LineKind) => {
    const at = Date.now();
    shopper.states.push(view.state);
    if (view.position !== null) shopper.told.push({ at, api, kind, position: view.position });
    if (view.admission) {
      const admission = decodeAdmission(view.admission.token);
      if (!admission) shopper.problems.push(`an admission token that does not decode: ${view.admission.token}`);
      else {
        if (admission.sku !== sku || admission.userId !== shopper.userId)
          shopper.problems.push(`an admission for ${admission.userId} of ${admission.sku}`);
        shopper.admissions.push({
          at,
          api,
          position: admission.position,
          placePosition: view.position,
          expiresAtMs: admission.expiresAtMs,
        });
      }
    }
  };

  const checkout = async (shopper: Shopper, admissionToken: string): Promise<void> => {
    const idempotencyKey = `line-${runId}-${shopper.index}`;
    const call = await retrying(plan, shopper.waited ? 'checkout-wait' : 'checkout', result, (api) =>
      fetch(`${api}/api/checkout`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${shopper.token}`,
          'idempotency-key': idempotencyKey,
          'admission-token': admissionToken,
          ...(shopper.waited ? { prefer: 'wait=5' } : {}),
        },
        body: JSON.stringify({ sku, quantity: 1 }),
        signal: AbortSignal.timeout(10_000),
      }),
    );
    const intent: IntentOutcome =
      call.status === 'gave-up'
        ? {
            userId: shopper.userId,
            idempotencyKey,
            answer: { kind: 'gave-up', lastError: call.lastError },
            attempts: call.attempts,
            waited: shopper.waited,
          }
        : intentOf(shopper, idempotencyKey, call.status, call.body, call.attempts);
    shopper.intent = intent;
    result.intents.push(intent);
    if (intent.answer.kind !== 'accepted' || !shopper.pays) return;
    const orderNo = intent.answer.orderNo;
    payments.push(
      sleep(200 + Math.random() * 1_300).then(() =>
        sendPayment(
          plan,
          { orderNo, eventId: `evt-${orderNo}-${randomUUID().slice(0, 8)}`, amountCents: priceCents, kind: 'pay' },
          result,
        ),
      ),
    );
  };

  /** One shopper: join, wait as told, check out once admitted. */
  const shop = async (shopper: Shopper): Promise<void> => {
    const joined = await lineCall('join', shopper, 'POST', `/api/sales/${sku}/line`);
    if (joined.status !== 200) {
      shopper.left = `join ${joined.status === 'gave-up' ? `gave up (${joined.lastError})` : joined.status}`;
      return;
    }
    shopper.joinedAt = Date.now();
    let view = joined.body as PlaceView;
    observe(shopper, view, joined.api, 'join');
    for (;;) {
      if (view.state === 'ADMITTED' && view.admission) {
        shopper.left = 'checked out';
        return checkout(shopper, view.admission.token);
      }
      if (view.state === 'CHECKED_OUT' || view.state === 'EXPIRED' || view.state === 'CLOSED') {
        shopper.left = view.state;
        return;
      }
      if (view.state === 'SOLD_OUT' && !view.unitsMayComeBack) {
        shopper.left = 'SOLD_OUT';
        return;
      }
      const pause = Math.max(1, view.refreshAfterSeconds ?? 1) * 1_000;
      if (Date.now() + pause > stopWaitingAt) {
        shopper.left = `stopped waiting (${view.state})`;
        return;
      }
      await sleep(pause);
      const read = await lineCall('read', shopper, 'GET', `/api/sales/${sku}/line/me`);
      if (read.status !== 200) {
        const code = read.status === 'gave-up' ? read.lastError : codeOf(read.body);
        shopper.problems.push(`a read answered ${read.status} ${code}`);
        shopper.left = `read ${read.status}`;
        return;
      }
      view = read.body as PlaceView;
      observe(shopper, view, read.api, 'read');
    }
  };

  const shoppers: Shopper[] = await Promise.all(
    Array.from({ length: p.shoppers }, async (_, index) => {
      const userId = `line-${runId}-${index}`;
      return {
        index,
        userId,
        token: await auth.issue(userId),
        pays: index % p.unpaidEvery !== p.unpaidEvery - 1,
        waited: index % 3 === 0,
        told: [],
        admissions: [],
        states: [],
        left: 'never arrived',
        problems: [],
      };
    }),
  );
  say(
    `sale ${sku}: ${p.stock} units, a line admitting ${p.admissionsPerSecond}/s, starting in ${((startsMs - Date.now()) / 1_000).toFixed(1)} s; ${p.shoppers} shoppers arriving at ${p.arrivalsPerSecond}/s`,
  );
  const shopping = Promise.all(
    shoppers.map(async (shopper) => {
      await sleep(Math.max(0, t0 + (shopper.index / p.arrivalsPerSecond) * 1_000 - Date.now()));
      await shop(shopper).catch((err: unknown) => {
        shopper.problems.push(`the shopper failed: ${String(err)}`);
        shopper.left = 'failed';
      });
    }),
  );

  // The faults, mid-line.
  await sleep(Math.max(0, startsMs + p.faultAfterStartMs - Date.now()));
  const snapshotAt = Date.now();
  const placesBefore = await placesInRedis(redis, sku);
  const lineAtFault = await lineCounters(redis, sku);
  const faultAt = Date.now();
  say(
    `${placesBefore.size} places in Redis (${lineAtFault.pre} in the pre-queue), ${lineAtFault.served} admitted, ${lineAtFault.consumed} spent: freezing Redis`,
  );
  const freezing = await deps.freezeRedis(p.freezeMs);
  if (!freezing) throw new Error('Redis was not frozen');
  const thawAt = await freezing.thawed;
  // Read while the kill is timed from the thaw: Redis first works off what the APIs queued during the freeze.
  const atThaw = lineCounters(redis, sku).then((counters) => ({ counters, answeredAt: Date.now() }));
  await sleep(Math.max(0, thawAt + p.killAfterThawMs - Date.now()));
  const atKill = lineCounters(redis, sku);
  const killedPid = deps.killedApi.process?.pid;
  const killAt = Date.now();
  await deps.killApi();
  const { counters: lineAtThaw, answeredAt: redisAnsweredAfterThaw } = await atThaw;
  const lineAtKill = await atKill;
  await waitFor(
    async () => {
      const running = await deps.killedApi.running();
      return running.pid !== killedPid && (await fetch(`${apiUrls[0]}/healthz`)).ok;
    },
    { what: 'the killed API back', timeoutMs: 90_000, intervalMs: 200, retryErrors: true },
  );
  const backAt = Date.now();
  say(
    `${deps.killedApi.name} killed with ${lineAtKill.length - lineAtKill.served} of ${lineAtKill.length} places still waiting; answering again ${((backAt - killAt) / 1_000).toFixed(1)} s later`,
  );

  await shopping;
  await Promise.all(payments);
  const accepted = result.intents.flatMap((i) => (i.answer.kind === 'accepted' ? [i.answer.orderNo] : []));
  say(`shoppers done ${((Date.now() - t0) / 1_000).toFixed(1)} s in: ${accepted.length} orders; waiting for quiet`);
  const repairedSeconds = await waitForRepair(checkDeps, sku, faultAt, deps.quiescenceTimeoutMs, deps.orders);
  const burstSeconds = (Date.now() - t0) / 1_000;
  const quietSeconds = await waitForQuiescence(checkDeps, sku, accepted, deps.quiescenceTimeoutMs);

  // The line once quiet: Redis's places, spent admissions and counters; every place read again through each API.
  const placesAfter = await placesInRedis(redis, sku);
  const used = await redis.hgetall(k.lineUsed);
  const lineAfter = await lineCounters(redis, sku);
  const auditAt = Date.now();
  const audit = new Map<string, Array<{ api: number; status: number | 'gave-up'; position: number | null }>>();
  const placed = shoppers.filter((s) => placesAfter.has(s.userId) || s.told.length > 0);
  for (let i = 0; i < placed.length; i += 16)
    await Promise.all(
      placed.slice(i, i + 16).map(async (shopper) => {
        const answers = [];
        for (let api = 0; api < apiUrls.length; api++) {
          const read = await lineCall('audit', shopper, 'GET', `/api/sales/${sku}/line/me`, api);
          const view = read.status === 200 ? (read.body as PlaceView) : undefined;
          if (view) observe(shopper, view, api, 'audit');
          answers.push({ api, status: read.status, position: view?.position ?? null });
        }
        audit.set(shopper.userId, answers);
      }),
    );
  const rows = [...(await stores.orders.getOrders([...(await stores.reports.orderNumbersOfSale(sku))])).values()];

  const violations: string[] = [];
  const failed = new Set<LineCheck>();
  const violated = (check: LineCheck, what: string) => {
    failed.add(check);
    if (violations.length < 40) violations.push(`${check}: ${what}`);
  };

  // placesSurvived
  for (const [userId, position] of placesBefore)
    if (placesAfter.get(userId) !== position)
      violated('placesSurvived', `${userId}: position ${position} before the freeze, ${placesAfter.get(userId)} after`);
  let toldBeforeFaults = 0;
  let toldAfterKillByRestarted = 0;
  for (const shopper of shoppers) {
    const positions = [...new Set(shopper.told.map((t) => t.position))];
    if (positions.length > 1)
      violated(
        'placesSurvived',
        `${shopper.userId} was told positions ${shopper.told.map((t) => `${t.position} (${t.kind} via api-${t.api + 1}, ${((t.at - faultAt) / 1_000).toFixed(1)} s from the freeze)`).join(', ')}`,
      );
    // A shopper who joined is never told they have no place (the other failures, given up, are figures).
    for (const problem of shopper.problems.filter((x) => x.includes('NOT_IN_LINE')))
      violated('placesSurvived', `${shopper.userId}: ${problem}`);
    const before = shopper.told.find((t) => t.at < faultAt)?.position;
    if (before !== undefined) toldBeforeFaults++;
    if (shopper.told.some((t) => t.at >= backAt && t.api === 0 && t.kind === 'read')) toldAfterKillByRestarted++;
    const inRedis = placesAfter.get(shopper.userId);
    const answers = audit.get(shopper.userId);
    if (!answers) continue;
    for (const answer of answers) {
      const expected = before ?? inRedis;
      if (answer.status !== 200 || answer.position !== expected || answer.position !== inRedis)
        violated(
          'placesSurvived',
          `${shopper.userId}: read through api-${answer.api + 1} after the round: ${answer.status} position ${answer.position} (before the faults ${before ?? 'none'}, in Redis ${inRedis ?? 'none'})`,
        );
    }
  }

  // placesDistinct
  const byPosition = new Map<number, string[]>();
  for (const [userId, position] of placesAfter) byPosition.set(position, [...(byPosition.get(position) ?? []), userId]);
  for (const [position, users] of byPosition)
    if (users.length > 1) violated('placesDistinct', `position ${position} held by ${users.join(', ')}`);
  for (let position = 1; position <= lineAfter.length; position++)
    if (!byPosition.has(position))
      violated('placesDistinct', `position ${position} of ${lineAfter.length} held by nobody`);
  if (placesAfter.size !== lineAfter.length)
    violated('placesDistinct', `${placesAfter.size} places for a line of length ${lineAfter.length}`);

  // noShopperAdmittedTwice
  const rowsByUser = new Map<string, string[]>();
  // An order that failed gave its admission back (release.lua), so its shopper may have bought again with it.
  const keptRows = rows.filter((row) => row.status !== 'FAILED');
  for (const row of keptRows) rowsByUser.set(row.userId, [...(rowsByUser.get(row.userId) ?? []), row.orderNo]);
  for (const shopper of shoppers) {
    const named = [...new Set(shopper.admissions.map((a) => a.position))];
    const own = placesAfter.get(shopper.userId);
    if (named.length > 1)
      violated('noShopperAdmittedTwice', `${shopper.userId} was shown admissions for positions ${named.join(', ')}`);
    for (const admission of shopper.admissions)
      if (admission.position !== own || admission.placePosition !== own)
        violated(
          'noShopperAdmittedTwice',
          `${shopper.userId} (place ${own ?? 'none'}) was shown an admission for position ${admission.position} with place ${admission.placePosition} via api-${admission.api + 1}`,
        );
    for (const problem of shopper.problems.filter((x) => x.includes('admission')))
      violated('noShopperAdmittedTwice', `${shopper.userId}: ${problem}`);
    const ofUser = rowsByUser.get(shopper.userId) ?? [];
    if (ofUser.length > 1) violated('noShopperAdmittedTwice', `${shopper.userId} has orders ${ofUser.join(', ')}`);
  }
  const spentBy = new Map<string, string[]>();
  for (const [userId, position] of Object.entries(used)) {
    spentBy.set(position, [...(spentBy.get(position) ?? []), userId]);
    if (String(placesAfter.get(userId)) !== position)
      violated(
        'noShopperAdmittedTwice',
        `${userId} spent position ${position}'s admission; their place is ${placesAfter.get(userId)}`,
      );
  }
  for (const [position, users] of spentBy)
    if (users.length > 1) violated('noShopperAdmittedTwice', `position ${position} spent by ${users.join(', ')}`);
  const usedCount = Object.keys(used).length;
  if (lineAfter.consumed !== usedCount || lineAfter.consumed < keptRows.length || lineAfter.consumed > rows.length)
    violated(
      'noShopperAdmittedTwice',
      `the line counts ${lineAfter.consumed} admissions spent; ${usedCount} users spent one; the sale has ` +
        `${rows.length} orders, ${keptRows.length} not failed`,
    );

  // admissionsWithinAdmitted
  if (lineAfter.consumed + lineAfter.givenBack > lineAfter.admitted)
    violated(
      'admissionsWithinAdmitted',
      `spent ${lineAfter.consumed} + given back ${lineAfter.givenBack} > admitted ${lineAfter.admitted}`,
    );
  if (lineAfter.admitted !== lineAfter.served || lineAfter.served > lineAfter.length)
    violated(
      'admissionsWithinAdmitted',
      `admitted ${lineAfter.admitted}, served through ${lineAfter.served}, length ${lineAfter.length}`,
    );
  for (const [userId, position] of Object.entries(used))
    if (Number(position) > lineAfter.served)
      violated('admissionsWithinAdmitted', `${userId} spent position ${position}, past served ${lineAfter.served}`);

  // everyAdmissionHonoured
  for (const shopper of shoppers) {
    const answer = shopper.intent?.answer;
    if (answer && answer.kind !== 'accepted')
      violated('everyAdmissionHonoured', `${shopper.userId}'s checkout with an admission: ${JSON.stringify(answer)}`);
  }

  // noInternalError
  for (const request of [...lineRequests, ...result.requests])
    if (request.outcome === 500)
      violated(
        'noInternalError',
        `a ${request.kind} sent ${((request.sentAt - faultAt) / 1_000).toFixed(1)} s from the freeze answered 500 ${request.code ?? ''}`,
      );

  const checks = Object.fromEntries(LINE_CHECKS.map((check) => [check, !failed.has(check)])) as Record<
    LineCheck,
    boolean
  >;
  const answers = (requests: ReadonlyArray<{ kind: string; outcome: unknown; code?: string }>) =>
    Object.fromEntries(
      [...new Set(requests.map((r) => r.kind))].map((kind) => [
        kind,
        countBy(
          requests.filter((r) => r.kind === kind).map((r) => `${String(r.outcome)}${r.code ? ` ${r.code}` : ''}`),
        ),
      ]),
    );
  const sent = (from: number, until: number) => (r: { sentAt: number }) => r.sentAt >= from && r.sentAt < until;
  const figures = {
    plan: { ...p, paymentWindowMs: config.paymentWindowMs },
    timeline: {
      startSecondsAfterFirstArrival: p.startsAfterMs / 1_000,
      freezeSecondsAfterStart: round((faultAt - startsMs) / 1_000),
      snapshotBeforeFreezeSeconds: round((faultAt - snapshotAt) / 1_000),
      redisAnsweredSecondsAfterThaw: round((redisAnsweredAfterThaw - thawAt) / 1_000),
      frozenSeconds: round((thawAt - faultAt) / 1_000),
      killSecondsAfterThaw: round((killAt - thawAt) / 1_000),
      killedApiBackSeconds: round((backAt - killAt) / 1_000),
      auditSecondsAfterStart: round((auditAt - startsMs) / 1_000),
    },
    line: { atFault: lineAtFault, atThaw: lineAtThaw, atKill: lineAtKill, atEnd: lineAfter },
    places: {
      inRedisBeforeFreeze: placesBefore.size,
      inRedisAfter: placesAfter.size,
      shoppersToldAPositionBeforeFaults: toldBeforeFaults,
      shoppersReadByRestartedApi: toldAfterKillByRestarted,
      audited: audit.size,
      auditReads: [...audit.values()].flat().length,
    },
    shoppers: {
      joined: shoppers.filter((s) => s.joinedAt !== undefined).length,
      joinedDuringFaults: shoppers.filter(
        (s) => s.joinedAt !== undefined && s.joinedAt >= faultAt && s.joinedAt < backAt,
      ).length,
      admissionsShown: shoppers.filter((s) => s.admissions.length > 0).length,
      left: countBy(shoppers.map((s) => s.left)),
      lastState: countBy(shoppers.map((s) => s.states.at(-1) ?? 'none')),
      problems: shoppers.flatMap((s) => s.problems.map((x) => `${s.userId}: ${x}`)).slice(0, 10),
    },
    orders: {
      accepted: accepted.length,
      rows: rows.length,
      byStatus: countBy(rows.map((r) => r.status)),
      usersWhoSpentAnAdmission: usedCount,
    },
    answers: {
      all: answers([...lineRequests, ...result.requests]),
      duringFreeze: answers([...lineRequests, ...result.requests].filter(sent(faultAt, thawAt))),
      fromThawUntilKilledApiBack: answers([...lineRequests, ...result.requests].filter(sent(thawAt, backAt))),
      byApi: countBy(lineRequests.map((r) => `api-${r.api + 1} ${String(r.outcome)}`)),
    },
  };
  const verdict = await checkAfterFault(checkDeps, sku, 1, result, new Date(t0), () => sameKeySameOrder(plan, result));
  const violatedChecks = [...CHAOS_CHECKS.filter((c) => !verdict.checks[c]), ...LINE_CHECKS.filter((c) => !checks[c])];
  return {
    ok: violatedChecks.length === 0,
    violated: violatedChecks,
    verdict,
    seconds: { burst: round(burstSeconds), storesAgreeAfterFault: round(repairedSeconds), quiet: round(quietSeconds) },
    line: { checks, figures, violations },
  };
}

function intentOf(
  shopper: Shopper,
  idempotencyKey: string,
  status: number,
  body: unknown,
  attempts: number,
): IntentOutcome {
  const named = body as { orderNo?: string; error?: { code?: string; details?: { orderNo?: string } } } | undefined;
  const orderNo =
    status === 202 || status === 201
      ? named?.orderNo
      : named?.error?.code === 'ORDER_FAILED'
        ? named.error.details?.orderNo
        : undefined;
  return {
    userId: shopper.userId,
    idempotencyKey,
    answer: orderNo
      ? { kind: 'accepted', orderNo, status }
      : { kind: 'refused', status, code: named?.error?.code ?? 'UNKNOWN' },
    attempts,
    waited: shopper.waited,
  };
}

/** The fields an admission token carries (src/line/admission-token.ts: `a1.<base64url JSON>.<mac>`). */
function decodeAdmission(
  token: string,
): { sku: string; userId: string; position: number; expiresAtMs: number } | undefined {
  try {
    const [, payload] = token.split('.');
    const fields = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(fields) || fields.length !== 4) return undefined;
    const [sku, userId, position, expiresAtMs] = fields as [string, string, number, number];
    return { sku, userId, position, expiresAtMs };
  } catch {
    return undefined;
  }
}

/**
 * Every place of the line in Redis, by user: a number, or for the pre-queue (`P`, once the start has passed) its rank
 * + 1 (lua/line_place.lua's rule).
 */
async function placesInRedis(redis: RedisClient, sku: string): Promise<Map<string, number>> {
  const k = saleKeys(sku);
  const [places, pre] = await Promise.all([redis.hgetall(k.linePlaces), redis.zrange(k.linePre, 0, -1)]);
  const rank = new Map(pre.map((userId, i) => [userId, i + 1]));
  const found = new Map<string, number>();
  for (const [userId, place] of Object.entries(places)) {
    const position = place === 'P' ? rank.get(userId) : Number(place);
    if (position !== undefined) found.set(userId, position);
  }
  return found;
}

interface LineCounters {
  served: number;
  length: number;
  pre: number;
  admitted: number;
  consumed: number;
  givenBack: number;
  available: number;
  reserved: number;
}

async function lineCounters(redis: RedisClient, sku: string): Promise<LineCounters> {
  const k = saleKeys(sku);
  const [line, sale] = await Promise.all([
    redis.hmget(k.line, 'served', 'next', 'pre', 'admitted', 'consumed', 'givenBack'),
    redis.hmget(k.sale, 'available', 'reserved'),
  ]);
  const n = (value: string | null | undefined) => Number(value ?? 0);
  const pre = line[2] === null || line[2] === undefined ? await redis.zcard(k.linePre) : n(line[2]);
  return {
    served: n(line[0]),
    length: pre + n(line[1]),
    pre,
    admitted: n(line[3]),
    consumed: n(line[4]),
    givenBack: n(line[5]),
    available: n(sale[0]),
    reserved: n(sale[1]),
  };
}

const codeOf = (body: unknown) => (body as { error?: { code?: string } } | undefined)?.error?.code ?? '';
const round = (value: number) => Math.round(value * 10) / 10;
