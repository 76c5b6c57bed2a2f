/**
 * The line benchmark's command line (bench/line.ts): `npm run bench -- --line [--shoppers N] [--rate R] [--stock S]
 * [--join-seconds J] [--pre-start-seconds P] [--connections C] [--plain-requests N] [--plain-stock S]
 * [--checkout-wins K] [--pay-within S] [--out DIR]`. Every size left out follows --shoppers, so `--shoppers 2000` is a
 * short run.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

export interface LineBenchArgs {
  /** Shoppers who join the line, each once, and poll it until admitted (then check out) or told it is sold out. */
  shoppers: number;
  /** The line's admissions per second. */
  rate: number;
  /** Units of the line's sale. */
  stock: number;
  /** The joins arrive evenly over this many seconds... */
  joinSeconds: number;
  /** ...of which the first this many are before the sale's start (the pre-queue). */
  preStartSeconds: number;
  /** Keep-alive connections of the load generator, for every phase. */
  connections: number;
  /** The plain burst (a sale without a line): checkouts, one per shopper, and its units. */
  plainRequests: number;
  plainStock: number;
  /** The checkout's CPU per answer: this many winning checkouts on a plain sale, and as many admitted on a line's. */
  checkoutWins: number;
  /** How long an admission lasts (the sale's line setting). */
  admissionTtlSeconds: number;
  /** The payment phase after the line's sale (bench/payments.ts): its winners pay within this many s; 0: none. */
  payWithinSeconds: number;
  outDir: string;
  redisAppendfsync: 'everysec' | 'always';
}

export function parseLineArgs(argv: string[], root: string): LineBenchArgs {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      line: { type: 'boolean', default: true },
      shoppers: { type: 'string' },
      rate: { type: 'string' },
      stock: { type: 'string' },
      'join-seconds': { type: 'string' },
      'pre-start-seconds': { type: 'string' },
      connections: { type: 'string' },
      'plain-requests': { type: 'string' },
      'plain-stock': { type: 'string' },
      'checkout-wins': { type: 'string' },
      'admission-ttl': { type: 'string' },
      'pay-within': { type: 'string' },
      out: { type: 'string' },
      'redis-appendfsync': { type: 'string', default: 'always' },
    },
  });
  const number = (name: string, value: string | undefined, fallback: number, min: number, whole = true) => {
    const n = value === undefined ? fallback : Number(value);
    if (!Number.isFinite(n) || n < min || (whole && !Number.isInteger(n)))
      throw new Error(`--${name} must be a ${whole ? 'whole ' : ''}number ≥ ${min}`);
    return n;
  };
  const fsync = args['redis-appendfsync'];
  if (fsync !== 'everysec' && fsync !== 'always') throw new Error('--redis-appendfsync must be everysec or always');
  const shoppers = number('shoppers', args.shoppers, 100_000, 10);
  const joinSeconds = number(
    'join-seconds',
    args['join-seconds'],
    Math.min(10, Math.max(2, shoppers / 10_000)),
    0.5,
    false,
  );
  const preStartSeconds = number(
    'pre-start-seconds',
    args['pre-start-seconds'],
    Math.max(1, Math.round(joinSeconds * 3) / 10),
    0.5,
    false,
  );
  if (preStartSeconds >= joinSeconds) throw new Error('--pre-start-seconds must be less than --join-seconds');
  const rate = number('rate', args.rate, 200, 1);
  if (rate > 100_000) throw new Error('--rate must be at most 100000 (the line accepts no more)');
  return {
    shoppers,
    rate,
    stock: number('stock', args.stock, Math.min(2_000, Math.max(1, Math.floor(shoppers / 5))), 1),
    joinSeconds,
    preStartSeconds,
    connections: number('connections', args.connections, Math.min(256, shoppers), 1),
    plainRequests: number('plain-requests', args['plain-requests'], Math.min(20_000, shoppers), 10),
    plainStock: number('plain-stock', args['plain-stock'], Math.min(1_000, Math.max(1, Math.floor(shoppers / 20))), 1),
    checkoutWins: number(
      'checkout-wins',
      args['checkout-wins'],
      Math.min(1_000, Math.max(10, Math.floor(shoppers / 10))),
      1,
    ),
    admissionTtlSeconds: number('admission-ttl', args['admission-ttl'], 120, 10),
    payWithinSeconds: number('pay-within', args['pay-within'], 120, 0, false),
    outDir: resolve(args.out ?? join(root, 'bench', 'results')),
    redisAppendfsync: fsync,
  };
}
