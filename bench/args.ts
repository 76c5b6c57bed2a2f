/**
 * The benchmark's command line: `npm run bench [-- --quick] [--requests N --users N --connections N
 * --stock N --limit N] [--variants ours,ceiling,sync,queue] [--wait [--wait-seconds N]] [--out DIR] [--profile DIR]
 * [--layout shared|split | --layouts shared,split] [--before <commit>] [--pay-within S] [--provider generic|stripe]`.
 * --provider stripe: ours (and before) pay through the Stripe double as a team on Stripe would (bench/payments.ts).
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LAYOUTS, type CpuLayout } from './cpu-layout.js';
import type { PhaseKind } from './phase.js';

export const VARIANTS = ['ours', 'ceiling', 'sync', 'queue'] as const;
export type Variant = (typeof VARIANTS)[number];
/**
 * What one measured burst ran: a variant, "ours-wait" (ours with `Prefer: wait=N`, see --wait), or
 * "before" (ours as an earlier commit had it, see --before).
 */
export type BenchRun = Variant | 'ours-wait' | 'ours-events' | 'before';

/** How the payment phase pays: the generic signed webhook, or the shopper's confirm at the Stripe double. */
export const PROVIDERS = ['generic', 'stripe'] as const;
export type BenchProvider = (typeof PROVIDERS)[number];

export interface BenchSettings {
  requests: number;
  users: number;
  connections: number;
  stock: number;
  perUserLimit: number;
  warmupRequests: number;
  quick: boolean;
  /** The payment phase after ours' burst (bench/payments.ts): every winner pays within this many s; 0: none. */
  payWithinSeconds: number;
  /** --provider: how the winners pay; `stripe` also runs ours' (and before's) servers with PAYMENT_PROVIDER=stripe. */
  provider: BenchProvider;
}

export interface BenchArgs {
  settings: BenchSettings;
  variants: Variant[];
  outDir: string;
  /** Writes a V8 CPU profile of every server process into this folder (open in Chrome DevTools). */
  profileDir?: string;
  /** Redis's append-only fsync policy for the stack the benchmark starts. */
  redisAppendfsync: 'everysec' | 'always';
  /**
   * With --wait, "ours" is also run as "ours-wait": the same burst with `Prefer: wait=N` (the
   * waiting checkout), so both models are measured on the same stack and settings. 0: not run.
   */
  waitSeconds: number;
  /**
   * --cluster: only `ours`, on the cluster layout (two APIs behind nginx, two workers; docs/scaling.md, "The layout").
   */
  cluster: boolean;
  /**
   * The CPU layouts to run the whole comparison in, one after another (bench/cpu-layout.ts):
   * `--layout L` for one, `--layouts a,b` for several; default `shared` alone.
   */
  layouts: CpuLayout[];
  /**
   * --before <commit>: that commit's API and worker run as the variant "before", right before ours (bench/before.ts).
   */
  before?: string;
  /**
   * --events-receiver: "ours" also runs as "ours-events", its payment phase with one webhook endpoint subscribed to
   * every order event (stack/event-receiver.ts): the cost of delivery per order, beside ours without.
   */
  eventsReceiver: boolean;
}

export function parseBenchArgs(argv: string[], root: string): BenchArgs {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      requests: { type: 'string' },
      users: { type: 'string' },
      connections: { type: 'string' },
      stock: { type: 'string' },
      limit: { type: 'string' },
      variants: { type: 'string' },
      profile: { type: 'string' },
      out: { type: 'string' },
      'redis-appendfsync': { type: 'string', default: 'always' },
      wait: { type: 'boolean', default: false },
      'wait-seconds': { type: 'string', default: '10' },
      cluster: { type: 'boolean', default: false },
      layout: { type: 'string' },
      layouts: { type: 'string' },
      before: { type: 'string' },
      'pay-within': { type: 'string' },
      provider: { type: 'string', default: 'generic' },
      'events-receiver': { type: 'boolean', default: false },
    },
  });
  const fsync = args['redis-appendfsync'];
  if (fsync !== 'everysec' && fsync !== 'always') throw new Error('--redis-appendfsync must be everysec or always');
  const quick = args.quick ?? false;
  const provider = args.provider as BenchProvider;
  if (!PROVIDERS.includes(provider))
    throw new Error(`unknown provider ${provider}; choose from ${PROVIDERS.join(', ')}`);
  const settings: BenchSettings = {
    requests: Number(args.requests ?? (quick ? 2_000 : 50_000)),
    users: Number(args.users ?? (quick ? 800 : 20_000)),
    connections: Number(args.connections ?? (quick ? 32 : 256)),
    stock: Number(args.stock ?? (quick ? 100 : 1_000)),
    perUserLimit: Number(args.limit ?? 1),
    warmupRequests: quick ? 300 : 3_000,
    quick,
    payWithinSeconds: Number(args['pay-within'] ?? (quick ? 10 : 120)),
    provider,
  };
  if (!Number.isFinite(settings.payWithinSeconds) || settings.payWithinSeconds < 0)
    throw new Error('--pay-within must be a number of seconds (0: no payment phase)');
  const waitSeconds = args.wait ? Number(args['wait-seconds']) : 0;
  if (!Number.isInteger(waitSeconds) || waitSeconds < 0)
    throw new Error('--wait-seconds must be a whole number of seconds');
  const cluster = args.cluster ?? false;
  // The baselines are single-node designs (the queue's script spans a list and a sale: two slots).
  const variants = (args.variants?.split(',') ?? (cluster ? ['ours'] : [...VARIANTS])) as Variant[];
  for (const v of variants)
    if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v}; choose from ${VARIANTS.join(', ')}`);
  if (cluster && variants.some((v) => v !== 'ours')) throw new Error('--cluster runs the ours variant only');
  // The cluster's apps are started by stack/cluster-app.ts, with no Stripe double beside them.
  if (cluster && provider === 'stripe') throw new Error('--provider stripe runs on the single-node stack only');
  if (args.layout !== undefined && args.layouts !== undefined) throw new Error('give --layout or --layouts, not both');
  const layouts = (args.layouts ?? args.layout ?? 'shared').split(',') as CpuLayout[];
  for (const l of layouts)
    if (!LAYOUTS.includes(l)) throw new Error(`unknown layout ${l}; choose from ${LAYOUTS.join(', ')}`);
  if (new Set(layouts).size !== layouts.length) throw new Error('--layouts names a layout twice');
  // The cluster layout's processes (nginx, two APIs, two workers, six Redis nodes) are started by stack/cluster-app.ts.
  if (cluster && layouts.includes('split')) throw new Error('--cluster runs in the shared layout only');
  return {
    settings,
    variants,
    outDir: resolve(args.out ?? (cluster ? join(root, 'bench', 'results', 'cluster') : join(root, 'bench', 'results'))),
    ...(args.profile ? { profileDir: resolve(args.profile) } : {}),
    redisAppendfsync: fsync,
    waitSeconds,
    cluster,
    layouts,
    ...(args.before ? { before: args.before } : {}),
    eventsReceiver: args['events-receiver'] ?? false,
  };
}

/**
 * `npm run bench -- --pipeline [--quick] [--orders N] [--concurrency C] [--live-orders L]
 * [--readers R] [--read-seconds S] [--rounds K] [--workers N] [--cluster] [--out DIR]`: the order
 * pipeline alone, measured against the floor workflow (bench/pipeline.ts).
 */
export interface PipelineArgs {
  /** Orders started and timed until all are persisted. */
  orders: number;
  /** Starts in flight at once. */
  concurrency: number;
  /** Orders awaiting payment while the status reads run: the timed ones, plus more if L > N. */
  liveOrders: number;
  /** Concurrent status readers, and how long they read. */
  readers: number;
  readSeconds: number;
  /** Orders started (and persisted) before the measurement, on their own SKU: JIT, pools, caches. */
  warmupOrders: number;
  /**
   * The phases, in order, each with a fresh worker: K rounds of floor then ours (--rounds K,
   * default 1), and in a full run a closing floor phase, so that every ours phase sits between two.
   */
  phases: PhaseKind[];
  /** Worker processes of every phase (ours and the floor alike), all on the phase's task queue. */
  workers: number;
  /**
   * The stack the phases run on: `single` (Temporal dev server, one Redis, MariaDB; servers named in
   * the environment are used as they are) or `cluster` (--cluster: the cluster layout of
   * stack/cluster.ts, always started by the benchmark, so that every server is measured).
   */
  layout: PipelineLayout;
  quick: boolean;
  outDir: string;
  redisAppendfsync: 'everysec' | 'always';
  /** Writes a V8 CPU profile of each worker into this folder (open in Chrome DevTools). */
  profileDir?: string;
}

export type PipelineLayout = 'single' | 'cluster';

export function parsePipelineArgs(argv: string[], root: string): PipelineArgs {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      pipeline: { type: 'boolean', default: true },
      quick: { type: 'boolean', default: false },
      orders: { type: 'string' },
      concurrency: { type: 'string' },
      'live-orders': { type: 'string' },
      readers: { type: 'string' },
      'read-seconds': { type: 'string' },
      rounds: { type: 'string' },
      workers: { type: 'string' },
      cluster: { type: 'boolean', default: false },
      out: { type: 'string' },
      // No default here, so that one given with --cluster is seen (and refused).
      'redis-appendfsync': { type: 'string' },
      profile: { type: 'string' },
    },
  });
  const cluster = args.cluster ?? false;
  const fsync = args['redis-appendfsync'] ?? 'always';
  if (fsync !== 'everysec' && fsync !== 'always') throw new Error('--redis-appendfsync must be everysec or always');
  // The cluster's Redis nodes are configured by stack/cluster/redis.ts (appendfsync always).
  if (cluster && args['redis-appendfsync'] !== undefined)
    throw new Error('--redis-appendfsync applies to the single-node stack only');
  const quick = args.quick ?? false;
  const whole = (name: string, value: string | undefined, fallback: number, min: number) => {
    const n = value === undefined ? fallback : Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number ≥ ${min}`);
    return n;
  };
  const orders = whole('orders', args.orders, quick ? 100 : 1_000, 1);
  const rounds = whole('rounds', args.rounds, 1, 1);
  const phases = Array.from({ length: rounds }, (): PhaseKind[] => ['floor', 'ours']).flat();
  // --quick keeps npm test short: one floor phase, no closing one.
  if (!quick) phases.push('floor');
  return {
    orders,
    concurrency: whole('concurrency', args.concurrency, quick ? 16 : 64, 1),
    liveOrders: whole('live-orders', args['live-orders'], orders, 1),
    readers: whole('readers', args.readers, quick ? 4 : 16, 1),
    readSeconds: whole('read-seconds', args['read-seconds'], quick ? 2 : 10, 1),
    warmupOrders: quick ? 10 : 50,
    phases,
    workers: whole('workers', args.workers, 1, 1),
    layout: cluster ? 'cluster' : 'single',
    quick,
    // Beside the cluster burst's results (bench/burst.ts --cluster), never mixed with the single node's.
    outDir: resolve(args.out ?? join(root, 'bench', 'results', ...(cluster ? ['cluster'] : []))),
    redisAppendfsync: fsync,
    ...(args.profile ? { profileDir: resolve(args.profile) } : {}),
  };
}

/**
 * The tracing-cost benchmark's modes, in the order a round runs them (every other round reversed): the reference first.
 */
export const TRACING_MODES = ['bare', 'off', 'sampled', 'all'] as const;
export type TracingMode = (typeof TRACING_MODES)[number];

/**
 * `npm run bench -- --tracing-cost [--quick] [--orders N] [--rounds K] [--concurrency C] [--modes a,b]
 * [--out DIR]`: what tracing costs the worker per order, four modes interleaved (bench/tracing-cost.ts).
 */
export interface TracingCostArgs {
  /** Orders measured per phase, after the warm-up. */
  orders: number;
  /** Rounds of the modes, each mode once per round on a fresh worker. */
  rounds: number;
  /** The modes each round runs (--modes: a subset, for an experiment); all four by default. */
  modes: TracingMode[];
  concurrency: number;
  warmupOrders: number;
  /**
   * How long past the last order's persist the CPU is still counted: longer than the span
   * processor's default schedule (OTEL_BSP_SCHEDULE_DELAY, 5 s), so a traced worker's last export
   * and Zipkin's intake of it fall in the window; the same for every mode.
   */
  settleMs: number;
  quick: boolean;
  outDir: string;
}

export function parseTracingCostArgs(argv: string[], root: string): TracingCostArgs {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      'tracing-cost': { type: 'boolean', default: true },
      quick: { type: 'boolean', default: false },
      orders: { type: 'string' },
      rounds: { type: 'string' },
      concurrency: { type: 'string' },
      modes: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const quick = args.quick ?? false;
  const whole = (name: string, value: string | undefined, fallback: number, min: number) => {
    const n = value === undefined ? fallback : Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number ≥ ${min}`);
    return n;
  };
  const named = args.modes?.split(',') ?? [...TRACING_MODES];
  for (const mode of named)
    if (!(TRACING_MODES as readonly string[]).includes(mode))
      throw new Error(`unknown mode ${mode}; choose from ${TRACING_MODES.join(', ')}`);
  // In their usual order whatever order they were named in; each once.
  const modes = TRACING_MODES.filter((mode) => named.includes(mode));
  return {
    orders: whole('orders', args.orders, quick ? 40 : 1_000, 1),
    rounds: whole('rounds', args.rounds, quick ? 1 : 2, 1),
    modes,
    concurrency: whole('concurrency', args.concurrency, quick ? 8 : 64, 1),
    warmupOrders: quick ? 10 : 50,
    // --quick checks the modes, not their figures: the worker's shutdown flushes its spans anyway.
    settleMs: quick ? 1_000 : 6_000,
    quick,
    outDir: resolve(args.out ?? join(root, 'bench', 'results')),
  };
}
