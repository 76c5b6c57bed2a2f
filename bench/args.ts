/**
 * The benchmark's command line: `npm run bench [-- --quick] [--requests N --users N --connections N
 * --stock N --limit N] [--variants ours,ceiling,sync,queue] [--wait [--wait-seconds N]] [--out DIR] [--profile DIR]`.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

export const VARIANTS = ['ours', 'ceiling', 'sync', 'queue'] as const;
export type Variant = (typeof VARIANTS)[number];
/** What one measured burst ran: a variant, or "ours-wait" (ours with `Prefer: wait=N`, see --wait). */
export type BenchRun = Variant | 'ours-wait';

export interface BenchSettings {
  requests: number;
  users: number;
  connections: number;
  stock: number;
  perUserLimit: number;
  warmupRequests: number;
  quick: boolean;
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
  /** --cluster: only `ours`, on the cluster layout (two APIs behind nginx, two workers; README "Past one machine"). */
  cluster: boolean;
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
    },
  });
  const fsync = args['redis-appendfsync'];
  if (fsync !== 'everysec' && fsync !== 'always') throw new Error('--redis-appendfsync must be everysec or always');
  const quick = args.quick ?? false;
  const settings: BenchSettings = {
    requests: Number(args.requests ?? (quick ? 2_000 : 50_000)),
    users: Number(args.users ?? (quick ? 800 : 20_000)),
    connections: Number(args.connections ?? (quick ? 32 : 256)),
    stock: Number(args.stock ?? (quick ? 100 : 1_000)),
    perUserLimit: Number(args.limit ?? 1),
    warmupRequests: quick ? 300 : 3_000,
    quick,
  };
  const waitSeconds = args.wait ? Number(args['wait-seconds']) : 0;
  if (!Number.isInteger(waitSeconds) || waitSeconds < 0) throw new Error('--wait-seconds must be a whole number of seconds');
  const cluster = args.cluster ?? false;
  // The baselines are single-node designs (the queue's script spans a list and a sale: two slots).
  const variants = (args.variants?.split(',') ?? (cluster ? ['ours'] : [...VARIANTS])) as Variant[];
  for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v}; choose from ${VARIANTS.join(', ')}`);
  if (cluster && variants.some((v) => v !== 'ours')) throw new Error('--cluster runs the ours variant only');
  return {
    settings,
    variants,
    outDir: resolve(args.out ?? (cluster ? join(root, 'bench', 'results', 'cluster') : join(root, 'bench', 'results'))),
    ...(args.profile ? { profileDir: resolve(args.profile) } : {}),
    redisAppendfsync: fsync,
    waitSeconds,
    cluster,
  };
}
