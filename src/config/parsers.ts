/** How each setting is parsed (zod): the value types of src/config/settings.ts, and the local stack's ports. */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ipaddr from 'ipaddr.js';
import ms from 'ms';
import { z } from 'zod';
import { durationToMs } from '../model/order-workflow.js';

/** Ports of the local stack started by `npm start`; tests and the benchmark pick free ports instead. */
export const LOCAL_STACK_PORTS = {
  api: 3000,
  temporal: 7233,
  temporalUi: 8233,
  redis: 6380,
  mysql: 3307,
  workerMetrics: 9464,
  workerHealth: 9465,
  codecServer: 8234,
} as const;

/** A positive duration ("30m", "90s"); exported for the providers' settings (src/payments/providers). */
export const durationString = z.string().refine(
  (value) => {
    try {
      return durationToMs(value) > 0;
    } catch {
      return false;
    }
  },
  { message: 'must be a positive duration such as "30m", "90s" or "2 hours"' },
);

export const booleanString = z
  .enum(['true', 'false', '1', '0', ''])
  .transform((value) => value === 'true' || value === '1');

export function commaList(value: string): string[] {
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

function refuse(ctx: z.RefinementCtx, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

/** A request budget: `points` requests per `durationSeconds` window. */
export interface RateLimit {
  points: number;
  durationSeconds: number;
}

/** rate-limiter-flexible counts windows in whole seconds, so "1500ms" is refused, not rounded. */
export const rateLimitString = z
  .string()
  .trim()
  .transform((value, ctx): RateLimit | null => {
    if (value === '0' || value.toLowerCase() === 'off') return null;
    const match = /^(\d{1,7})\s*\/\s*(.+)$/.exec(value);
    const points = Number(match?.[1]);
    const durationMs = match?.[2] ? ms(match[2] as Parameters<typeof ms>[0]) : NaN;
    if (!match || points < 1 || !Number.isFinite(durationMs) || durationMs < 1_000 || durationMs % 1_000 !== 0)
      return refuse(ctx, 'must be "<requests>/<duration>" such as "10/10s" or "20/1m" (whole seconds), or "0"/"off"');
    return { points, durationSeconds: durationMs / 1_000 };
  });

/** May be zero: for waits that can be skipped. */
export const optionalDurationString = z.string().refine(
  (value) => {
    const parsed = ms(value as Parameters<typeof ms>[0]);
    return typeof parsed === 'number' && Number.isFinite(parsed) && parsed >= 0;
  },
  { message: 'must be a duration such as "5s" or "0"' },
);

/**
 * As Temporal takes them: a name without its delimiters '.' and ':' but with the Worker Controller's '/', an id with an
 * image tag's '.'; neither begins with '__' (reserved by the server).
 */
export const DEPLOYMENT_NAME = z
  .string()
  .min(1)
  .max(200)
  .regex(/^(?!__)[A-Za-z0-9_/-]+$/, "only letters, digits, '-', '_' and '/', not beginning with '__'");
export const BUILD_ID = z
  .string()
  .min(1)
  .max(200)
  .regex(/^(?!__)[A-Za-z0-9_.-]+$/, "only letters, digits, '-', '_' and '.', not beginning with '__'");

/** One key of the payload codec (src/infra/payload-codec.ts): its id travels in each encrypted payload's metadata. */
export interface PayloadCodecKey {
  id: string;
  /** 32 bytes: AES-256. */
  secret: Buffer;
}

/** `id=base64,id=base64`: the first encrypts, every one decrypts (a rotation puts the new key first, the old after). */
export const payloadCodecKeys = z.string().transform((value, ctx): PayloadCodecKey[] => {
  const keys: PayloadCodecKey[] = [];
  for (const [n, entry] of commaList(value).entries()) {
    const match = /^([A-Za-z0-9_-]{1,32})=([A-Za-z0-9+/]+={0,2})$/.exec(entry);
    const secret = match ? Buffer.from(match[2]!, 'base64') : undefined;
    // Named by its id only when it has one (bare base64 never has "id=" then a value): never print a key.
    const named = /^([A-Za-z0-9_-]{1,32})=[^=]/.exec(entry)?.[1];
    if (!match || secret?.length !== 32)
      return refuse(
        ctx,
        `${named ? `key "${named}"` : `entry ${n + 1} (not shown)`}: each key must be <id>=<32 bytes in base64> (openssl rand -base64 32)`,
      );
    if (keys.some((key) => key.id === match[1])) return refuse(ctx, `key id "${match[1]}" is listed twice`);
    keys.push({ id: match[1]!, secret });
  }
  return keys.length > 0 ? keys : refuse(ctx, 'lists no key');
});

/** One key of EVENTS_SECRET_KEY (src/order-events/endpoint-secrets.ts): '' for the one key of a value without ids. */
export interface EventsSecretKey {
  id: string;
  secret: string;
}

/** One key, or `<id>=<key>,…`: the first seals, all open (docs/operations.md); a refusal never shows a key's text. */
export const eventsSecretKeys = z.string().transform((value, ctx): EventsSecretKey[] => {
  // `id=` then a value: a key's own base64 padding (`…==`) is no id, and is never shown as one.
  const listed = /^[A-Za-z0-9_-]{1,32}=[^=]/.test(value);
  const keys: EventsSecretKey[] = [];
  for (const [n, entry] of (listed ? commaList(value) : [value]).entries()) {
    const match = listed ? /^([A-Za-z0-9_-]{1,32})=([^=].*)$/.exec(entry) : null;
    const key = match ? { id: match[1]!, secret: match[2]! } : { id: '', secret: entry };
    const named = match ? `key "${key.id}"` : `entry ${n + 1} (not shown)`;
    if ((listed && !match) || key.secret.length < 24)
      return refuse(ctx, `${named}: each key must be <id>=<at least 24 characters> (openssl rand -hex 32)`);
    if (keys.some((other) => other.id === key.id)) return refuse(ctx, `key id "${key.id}" is listed twice`);
    keys.push(key);
  }
  return keys;
});

/** A checkout's own key outside production (.data/, never committed): no published key reads a developer's history. */
const LOCAL_CODEC_KEY_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.data', 'payload-codec-keys');

export function localCodecKeys(): string {
  try {
    return readFileSync(LOCAL_CODEC_KEY_FILE, 'utf8').trim();
  } catch {
    const generated = `local-${randomBytes(4).toString('hex')}=${randomBytes(32).toString('base64')}`;
    mkdirSync(dirname(LOCAL_CODEC_KEY_FILE), { recursive: true });
    // Linked once written whole (`wx` would create it empty first): processes starting at once all read the first key.
    const written = `${LOCAL_CODEC_KEY_FILE}.${process.pid}.tmp`;
    writeFileSync(written, `${generated}\n`, { mode: 0o600 });
    try {
      linkSync(written, LOCAL_CODEC_KEY_FILE);
    } catch {
      // another process linked its key first
    } finally {
      rmSync(written, { force: true });
    }
    return readFileSync(LOCAL_CODEC_KEY_FILE, 'utf8').trim();
  }
}

/** Origins as browsers send them, no path or wildcard: the codec server answers them with credentials allowed. */
export const originList = z.string().transform((value, ctx): string[] => {
  const origins = commaList(value);
  const bad = origins.filter((origin) => {
    try {
      const url = new URL(origin);
      return !['http:', 'https:'].includes(url.protocol) || url.origin !== origin.replace(/\/$/, '');
    } catch {
      return true;
    }
  });
  if (bad.length > 0 || origins.length === 0)
    return refuse(
      ctx,
      `${bad.length > 0 ? `not an origin: ${bad.map((origin) => `"${origin}"`).join(', ')}` : 'lists no origin'} (origins such as http://127.0.0.1:8233,https://temporal.example.com)`,
    );
  return [...new Set(origins.map((origin) => new URL(origin).origin))];
});

export const redisUrls = z.string().refine(
  (value) => {
    const urls = value.split(',').map((url) => url.trim());
    return urls.every((url) => {
      try {
        return ['redis:', 'rediss:'].includes(new URL(url).protocol);
      } catch {
        return false;
      }
    });
  },
  { message: 'must be a redis:// or rediss:// URL, or a comma-separated list of them (Redis Cluster nodes)' },
);

/** Comma-separated CIDR ranges (IPv4 in four-part decimal), in canonical form (src/order-events/webhook-sender.ts). */
export const cidrList = z.string().transform((value, ctx): string[] => {
  const ranges = commaList(value);
  const bad = ranges.filter(
    (range) => !ipaddr.IPv4.isValidCIDRFourPartDecimal(range) && !ipaddr.IPv6.isValidCIDR(range),
  );
  if (bad.length > 0)
    return refuse(
      ctx,
      `not a CIDR range: ${bad.map((range) => `"${range}"`).join(', ')} (ranges such as 127.0.0.0/8,::1/128)`,
    );
  return ranges.map((range) => {
    const [address, bits] = ipaddr.parseCIDR(range);
    return `${address.toString()}/${bits}`;
  });
});
