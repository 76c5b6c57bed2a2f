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
import type { OrderRow } from '../../src/db/rows.js';
import type { RedisClient } from '../../src/infra/redis.js';
import { saleKeys } from '../../src/redis/layout.js';
import type { PlaceView } from '../../src/line/line-service.js';
import { waitFor } from '../../stack/wait-for.js';
import { answersOk, clientFor } from '../../toolkit/http-client.js';
import { CHAOS_CHECKS, countBy } from '../checks.js';
import { retrying, sendPayment, type IntentOutcome } from '../../toolkit/shoppers.js';
import { firstApi, freeze, kill, serverOf, type Freezing } from './faults.js';
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

const LINE_CHECKS = [
  'placesSurvived',
  'placesDistinct',
  'noShopperAdmittedTwice',
  'admissionsWithinAdmitted',
  'everyAdmissionHonoured',
  'noInternalError',
] as const;
type LineCheck = (typeof LINE_CHECKS)[number];

interface LinePlan {
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

const LINE_PLAN: LinePlan = {
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

/** The round's state, filled in by its steps in order. */
class LineSale extends SaleUnderFault {
  readonly p = LINE_PLAN;
  runId = randomUUID().slice(0, 8);
  /** The sale's start (its line's admissions), and when the shoppers stop waiting. */
  startsMs = 0;
  stopWaitingAt = 0;
  lineRequests: LineRequest[] = [];
  payments: Array<Promise<unknown>> = [];
  shoppers: Shopper[] = [];
  shopping: Promise<unknown> | undefined;
  snapshotAt = 0;
  /** Redis's places just before the freeze, and the line's counters at each moment of the faults. */
  placesBefore = new Map<string, number>();
  lineAtFault!: LineCounters;
  freezing: Freezing | undefined;
  thawAt = 0;
  lineAtThaw!: LineCounters;
  redisAnsweredAfterThaw = 0;
  lineAtKill!: LineCounters;
  killAt = 0;
  /** When the killed API answered again. */
  backAt = 0;
  /** The line once quiet: Redis's places, the admissions spent, the counters, each place read through each API. */
  placesAfter = new Map<string, number>();
  used: Record<string, string> = {};
  lineAfter!: LineCounters;
  auditAt = 0;
  audit = new Map<string, Array<{ api: number; status: number | 'gave-up'; position: number | null }>>();
  rows: OrderRow[] = [];
  section: RoundSection | undefined;
}

/** A line request through a random API (or `api`), retried on 5xx and errors with backoff, 429 waited out. */
async function lineCall(
  s: LineSale,
  kind: LineKind,
  shopper: Shopper,
  method: 'GET' | 'POST',
  path: string,
  api?: number,
): Promise<LineCall> {
  const { apiUrls } = s.suite;
  const deadline = Date.now() + s.p.retryForMs;
  let lastError = '';
  for (let delay = 200, attempt = 0; ; attempt++) {
    const at = api ?? (attempt + Math.floor(Math.random() * apiUrls.length)) % apiUrls.length;
    let pause = delay;
    const answer = await clientFor(apiUrls[at] ?? '').request(method, path, {
      headers: { authorization: `Bearer ${shopper.token}` },
      timeoutMs: 10_000,
    });
    const body = answer.json;
    // A body that is not JSON counts as no answer, as its parse error did.
    const failure =
      answer.failure?.message ??
      (answer.body !== '' && body === undefined ? `not JSON: ${answer.body.slice(0, 200)}` : null);
    if (failure !== null) {
      s.lineRequests.push({
        kind,
        api: at,
        sentAt: answer.sentAt,
        ms: answer.ms,
        outcome: answer.failure?.kind === 'timeout' ? 'timeout' : 'error',
      });
      lastError = failure;
      delay = Math.min(delay * 2, 2_000);
    } else {
      const code = (body as { error?: { code?: string } } | undefined)?.error?.code;
      s.lineRequests.push({
        kind,
        api: at,
        sentAt: answer.sentAt,
        ms: answer.ms,
        outcome: answer.status,
        ...(code ? { code } : {}),
      });
      const retryAfterMs = (answer.retryAfter ?? 0) * 1_000;
      if (answer.status === 429) pause = Math.max(retryAfterMs, 1_000);
      else if (answer.status < 500) return { status: answer.status, body, api: at, retryAfter: answer.retryAfter };
      else {
        lastError = `${answer.status} ${answer.body.slice(0, 200)}`;
        delay = Math.min(delay * 2, 2_000);
        if (retryAfterMs > 0) pause = Math.min(Math.max(pause, retryAfterMs), 2_000);
      }
    }
    if (Date.now() + pause > deadline) return { status: 'gave-up', lastError };
    await sleep(pause);
  }
}

/** Records what a 200 answer told the shopper: the position, the state, the admission's position. */
function observe(s: LineSale, shopper: Shopper, view: PlaceView, api: number, kind: LineKind): void {
  const at = Date.now();
  shopper.states.push(view.state);
  if (view.position !== null) shopper.told.push({ at, api, kind, position: view.position });
  if (view.admission) {
    const admission = decodeAdmission(view.admission.token);
    if (!admission) shopper.problems.push(`an admission token that does not decode: ${view.admission.token}`);
    else {
      if (admission.sku !== s.sku || admission.userId !== shopper.userId)
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
}

/** The admitted shopper's checkout, retried with its key; then, but one in `unpaidEvery`, the payment. */
async function checkout(s: LineSale, shopper: Shopper, admissionToken: string): Promise<void> {
  const idempotencyKey = `line-${s.runId}-${shopper.index}`;
  const call = await retrying(s.plan, shopper.waited ? 'checkout-wait' : 'checkout', s.result, (api) =>
    clientFor(api).request('POST', '/api/checkout', {
      headers: {
        authorization: `Bearer ${shopper.token}`,
        'idempotency-key': idempotencyKey,
        'admission-token': admissionToken,
        ...(shopper.waited ? { prefer: 'wait=5' } : {}),
      },
      json: { sku: s.sku, quantity: 1 },
      timeoutMs: 10_000,
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
  s.result.intents.push(intent);
  if (intent.answer.kind !== 'accepted' || !shopper.pays) return;
  const orderNo = intent.answer.orderNo;
  s.payments.push(
    sleep(200 + Math.random() * 1_300).then(() =>
      sendPayment(
        s.plan,
        { orderNo, eventId: `evt-${orderNo}-${randomUUID().slice(0, 8)}`, amountCents: PRICE_CENTS, kind: 'pay' },
        s.result,
      ),
    ),
  );
}

/** One shopper: join, wait as told, check out once admitted. */
async function shop(s: LineSale, shopper: Shopper): Promise<void> {
  const joined = await lineCall(s, 'join', shopper, 'POST', `/api/sales/${s.sku}/line`);
  if (joined.status !== 200) {
    shopper.left = `join ${joined.status === 'gave-up' ? `gave up (${joined.lastError})` : joined.status}`;
    return;
  }
  shopper.joinedAt = Date.now();
  let view = joined.body as PlaceView;
  observe(s, shopper, view, joined.api, 'join');
  for (;;) {
    if (view.state === 'ADMITTED' && view.admission) {
      shopper.left = 'checked out';
      return checkout(s, shopper, view.admission.token);
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
    if (Date.now() + pause > s.stopWaitingAt) {
      shopper.left = `stopped waiting (${view.state})`;
      return;
    }
    await sleep(pause);
    const read = await lineCall(s, 'read', shopper, 'GET', `/api/sales/${s.sku}/line/me`);
    if (read.status !== 200) {
      const code = read.status === 'gave-up' ? read.lastError : codeOf(read.body);
      shopper.problems.push(`a read answered ${read.status} ${code}`);
      shopper.left = `read ${read.status}`;
      return;
    }
    view = read.body as PlaceView;
    observe(s, shopper, view, read.api, 'read');
  }
}

/** The sale with its line, its shoppers and their tokens. */
const arrange = step<LineSale>('arrange', async (s) => {
  const { suite, p } = s;
  if (p.admissionTtlSeconds * 1_000 <= p.freezeMs + p.killAfterThawMs + 20_000)
    throw new Error(`an admission (${p.admissionTtlSeconds} s) must outlast the freeze and the kill`);
  s.sku = skuOf('line');
  s.t0 = Date.now();
  s.startsMs = s.t0 + p.startsAfterMs;
  await suite.sales.create({
    sku: s.sku,
    name: s.sku,
    priceCents: PRICE_CENTS,
    stock: p.stock,
    perUserLimit: 1,
    startsAt: new Date(s.startsMs).toISOString(),
    line: { admissionsPerSecond: p.admissionsPerSecond, admissionTtlSeconds: p.admissionTtlSeconds },
  });
  s.result = { intents: [], events: [], cancels: [], reads: [], requests: [] };
  s.plan = trafficPlan(suite, {
    sku: s.sku,
    shoppers: p.shoppers,
    concurrency: p.shoppers,
    arrivalsPerSecond: p.arrivalsPerSecond,
    retryForMs: p.retryForMs,
  });
  s.stopWaitingAt = s.startsMs + p.waitForMs;
  s.shoppers = await Promise.all(
    Array.from({ length: p.shoppers }, async (_, index) => {
      const userId = `line-${s.runId}-${index}`;
      return {
        index,
        userId,
        token: await suite.auth.issue(userId),
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
  suite.say(
    `sale ${s.sku}: ${p.stock} units, a line admitting ${p.admissionsPerSecond}/s, starting in ${((s.startsMs - Date.now()) / 1_000).toFixed(1)} s; ${p.shoppers} shoppers arriving at ${p.arrivalsPerSecond}/s`,
  );
});

const startTraffic = step<LineSale>('start traffic', async (s) => {
  s.shopping = Promise.all(
    s.shoppers.map(async (shopper) => {
      await sleepUntil(s.t0 + (shopper.index / s.p.arrivalsPerSecond) * 1_000);
      await shop(s, shopper).catch((err: unknown) => {
        shopper.problems.push(`the shopper failed: ${String(err)}`);
        shopper.left = 'failed';
      });
    }),
  );
});

/** Mid-line, Redis frozen (as redis-freeze), its places read just before. */
const injectFault = step<LineSale>('inject fault', async (s) => {
  const { suite, p } = s;
  await sleepUntil(s.startsMs + p.faultAfterStartMs);
  s.snapshotAt = Date.now();
  s.placesBefore = await placesInRedis(suite.redis, s.sku);
  s.lineAtFault = await lineCounters(suite.redis, s.sku);
  s.faultAt = Date.now();
  suite.say(
    `${s.placesBefore.size} places in Redis (${s.lineAtFault.pre} in the pre-queue), ${s.lineAtFault.served} admitted, ${s.lineAtFault.consumed} spent: freezing Redis`,
  );
  s.freezing = freeze(serverOf(suite.targets, 'redis'), p.freezeMs, suite.say);
});

/** The thaw; then, `killAfterThawMs` later, the first API SIGKILLed (as api-kill) and waited for until back. */
const healAndKillApi = step<LineSale>('heal, then kill an API', async (s) => {
  const { suite, p } = s;
  if (!s.freezing) throw new Error('Redis was not frozen');
  s.thawAt = await s.freezing.thawed;
  // Read while the kill is timed from the thaw: Redis first works off what the APIs queued during the freeze.
  const atThaw = lineCounters(suite.redis, s.sku).then((counters) => ({ counters, answeredAt: Date.now() }));
  await sleepUntil(s.thawAt + p.killAfterThawMs);
  const atKill = lineCounters(suite.redis, s.sku);
  const killedApi = firstApi(suite.targets);
  const killedPid = killedApi.process?.pid;
  s.killAt = Date.now();
  kill(killedApi, suite.say);
  const thawed = await atThaw;
  s.lineAtThaw = thawed.counters;
  s.redisAnsweredAfterThaw = thawed.answeredAt;
  s.lineAtKill = await atKill;
  await waitFor(
    async () => {
      const running = await killedApi.running();
      return running.pid !== killedPid && (await answersOk(`${suite.apiUrls[0]}/healthz`, 5_000));
    },
    { what: 'the killed API back', timeoutMs: 90_000, intervalMs: 200, retryErrors: true },
  );
  s.backAt = Date.now();
  suite.say(
    `${killedApi.name} killed with ${s.lineAtKill.length - s.lineAtKill.served} of ${s.lineAtKill.length} places still waiting; answering again ${((s.backAt - s.killAt) / 1_000).toFixed(1)} s later`,
  );
});

const shoppersDone = step<LineSale>('shoppers done', async (s) => {
  await s.shopping;
  await Promise.all(s.payments);
  s.accepted = acceptedOf(s.result);
  s.suite.say(
    `shoppers done ${((Date.now() - s.t0) / 1_000).toFixed(1)} s in: ${s.accepted.length} orders; waiting for quiet`,
  );
});

/** The line once quiet: Redis's places, spent admissions and counters; every place read again through each API. */
const auditLine = step<LineSale>('audit the line', async (s) => {
  const { suite } = s;
  const { redis, apiUrls, stores } = suite;
  s.placesAfter = await placesInRedis(redis, s.sku);
  s.used = await redis.hgetall(saleKeys(s.sku).lineUsed);
  s.lineAfter = await lineCounters(redis, s.sku);
  s.auditAt = Date.now();
  const placed = s.shoppers.filter((shopper) => s.placesAfter.has(shopper.userId) || shopper.told.length > 0);
  for (let i = 0; i < placed.length; i += 16)
    await Promise.all(
      placed.slice(i, i + 16).map(async (shopper) => {
        const answers = [];
        for (let api = 0; api < apiUrls.length; api++) {
          const read = await lineCall(s, 'audit', shopper, 'GET', `/api/sales/${s.sku}/line/me`, api);
          const view = read.status === 200 ? (read.body as PlaceView) : undefined;
          if (view) observe(s, shopper, view, api, 'audit');
          answers.push({ api, status: read.status, position: view?.position ?? null });
        }
        s.audit.set(shopper.userId, answers);
      }),
    );
  s.rows = [...(await stores.orders.getOrders([...(await stores.reports.orderNumbersOfSale(s.sku))])).values()];
});

type Violated = (check: LineCheck, what: string) => void;

/** placesSurvived: every place Redis held before the freeze unchanged; one position per shopper, from either API. */
function judgePlacesSurvived(s: LineSale, violated: Violated): { toldBeforeFaults: number; readByRestarted: number } {
  const { placesBefore, placesAfter, faultAt, backAt } = s;
  for (const [userId, position] of placesBefore)
    if (placesAfter.get(userId) !== position)
      violated('placesSurvived', `${userId}: position ${position} before the freeze, ${placesAfter.get(userId)} after`);
  let toldBeforeFaults = 0;
  let readByRestarted = 0;
  for (const shopper of s.shoppers) {
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
    if (shopper.told.some((t) => t.at >= backAt && t.api === 0 && t.kind === 'read')) readByRestarted++;
    const inRedis = placesAfter.get(shopper.userId);
    const answers = s.audit.get(shopper.userId);
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
  return { toldBeforeFaults, readByRestarted };
}

/** placesDistinct: the positions Redis holds are exactly 1..length, one shopper each. */
function judgePlacesDistinct(s: LineSale, violated: Violated): void {
  const byPosition = new Map<number, string[]>();
  for (const [userId, position] of s.placesAfter)
    byPosition.set(position, [...(byPosition.get(position) ?? []), userId]);
  for (const [position, users] of byPosition)
    if (users.length > 1) violated('placesDistinct', `position ${position} held by ${users.join(', ')}`);
  for (let position = 1; position <= s.lineAfter.length; position++)
    if (!byPosition.has(position))
      violated('placesDistinct', `position ${position} of ${s.lineAfter.length} held by nobody`);
  if (s.placesAfter.size !== s.lineAfter.length)
    violated('placesDistinct', `${s.placesAfter.size} places for a line of length ${s.lineAfter.length}`);
}

/** noShopperAdmittedTwice: each admission shown names the shopper's own place; one order and one spent each. */
function judgeAdmittedOnce(s: LineSale, violated: Violated): void {
  const { placesAfter, used, lineAfter, rows } = s;
  const rowsByUser = new Map<string, string[]>();
  // An order that failed gave its admission back (release.lua), so its shopper may have bought again with it.
  const keptRows = rows.filter((row) => row.status !== 'FAILED');
  for (const row of keptRows) rowsByUser.set(row.userId, [...(rowsByUser.get(row.userId) ?? []), row.orderNo]);
  for (const shopper of s.shoppers) {
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
}

/** admissionsWithinAdmitted: consumed + givenBack ≤ admitted = servedThrough ≤ length, every spent ≤ served. */
function judgeAdmissionsWithinAdmitted(s: LineSale, violated: Violated): void {
  const { lineAfter, used } = s;
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
}

/** The line's own checks (LINE_CHECKS), each from what was observed, and its figures. */
const checkLine = step<LineSale>('check the line', async (s) => {
  const { p, faultAt, thawAt, backAt, startsMs } = s;
  const violations: string[] = [];
  const failed = new Set<LineCheck>();
  const violated: Violated = (check, what) => {
    failed.add(check);
    if (violations.length < 40) violations.push(`${check}: ${what}`);
  };
  const { toldBeforeFaults, readByRestarted } = judgePlacesSurvived(s, violated);
  judgePlacesDistinct(s, violated);
  judgeAdmittedOnce(s, violated);
  judgeAdmissionsWithinAdmitted(s, violated);
  // everyAdmissionHonoured: every checkout with an admission ended as an order.
  for (const shopper of s.shoppers) {
    const answer = shopper.intent?.answer;
    if (answer && answer.kind !== 'accepted')
      violated('everyAdmissionHonoured', `${shopper.userId}'s checkout with an admission: ${JSON.stringify(answer)}`);
  }
  // noInternalError
  for (const request of [...s.lineRequests, ...s.result.requests])
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
  const all = [...s.lineRequests, ...s.result.requests];
  const { shoppers, rows } = s;
  const figures = {
    plan: { ...p, paymentWindowMs: s.suite.config.paymentWindowMs },
    timeline: {
      startSecondsAfterFirstArrival: p.startsAfterMs / 1_000,
      freezeSecondsAfterStart: round1((faultAt - startsMs) / 1_000),
      snapshotBeforeFreezeSeconds: round1((faultAt - s.snapshotAt) / 1_000),
      redisAnsweredSecondsAfterThaw: round1((s.redisAnsweredAfterThaw - thawAt) / 1_000),
      frozenSeconds: round1((thawAt - faultAt) / 1_000),
      killSecondsAfterThaw: round1((s.killAt - thawAt) / 1_000),
      killedApiBackSeconds: round1((backAt - s.killAt) / 1_000),
      auditSecondsAfterStart: round1((s.auditAt - startsMs) / 1_000),
    },
    line: { atFault: s.lineAtFault, atThaw: s.lineAtThaw, atKill: s.lineAtKill, atEnd: s.lineAfter },
    places: {
      inRedisBeforeFreeze: s.placesBefore.size,
      inRedisAfter: s.placesAfter.size,
      shoppersToldAPositionBeforeFaults: toldBeforeFaults,
      shoppersReadByRestartedApi: readByRestarted,
      audited: s.audit.size,
      auditReads: [...s.audit.values()].flat().length,
    },
    shoppers: {
      joined: shoppers.filter((x) => x.joinedAt !== undefined).length,
      joinedDuringFaults: shoppers.filter(
        (x) => x.joinedAt !== undefined && x.joinedAt >= faultAt && x.joinedAt < backAt,
      ).length,
      admissionsShown: shoppers.filter((x) => x.admissions.length > 0).length,
      left: countBy(shoppers.map((x) => x.left)),
      lastState: countBy(shoppers.map((x) => x.states.at(-1) ?? 'none')),
      problems: shoppers.flatMap((x) => x.problems.map((problem) => `${x.userId}: ${problem}`)).slice(0, 10),
    },
    orders: {
      accepted: s.accepted.length,
      rows: rows.length,
      byStatus: countBy(rows.map((r) => r.status)),
      usersWhoSpentAnAdmission: Object.keys(s.used).length,
    },
    answers: {
      all: answers(all),
      duringFreeze: answers(all.filter(sent(faultAt, thawAt))),
      fromThawUntilKilledApiBack: answers(all.filter(sent(thawAt, backAt))),
      byApi: countBy(s.lineRequests.map((r) => `api-${r.api + 1} ${String(r.outcome)}`)),
    },
  };
  s.section = { checks, figures, violations };
});

export const lineRedisFreezeApiKill = defineRound<LineSale>({
  name: 'line-redis-freeze-api-kill',
  faults: 'a sale with a waiting line: Redis frozen 15 s and an API killed while shoppers wait in it',
  checks: [...CHAOS_CHECKS, ...LINE_CHECKS],
  recordedPlan: (settings) => ({ paymentWindow: settings.paymentWindow, lineRound: LINE_PLAN }),
  state: (suite: Suite) => new LineSale(suite),
  steps: [
    arrange,
    startTraffic,
    injectFault,
    healAndKillApi,
    shoppersDone,
    waitForStoresToAgree,
    waitForQuiet,
    auditLine,
    checkLine,
    checkInvariants,
  ],
  outcome: (s) => {
    if (!s.section) throw new Error('line-redis-freeze-api-kill judged nothing');
    // The shoppers' burst ran until the stores agreed after the faults.
    s.seconds.burst = round1((s.repairedAt - s.t0) / 1000);
    return { ...s.outcomeBase(), line: s.section };
  },
});

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
