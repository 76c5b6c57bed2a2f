/**
 * A merchant's receiver of order events, as a shop would write one: each request verified on its raw body with the
 * `standardwebhooks` library (not our signing code), deduplicated by `webhook-id`, answered 2xx. Shared by the
 * delivery tests, the fault suite and the benchmark; `answer` makes it fail, slow down or hang on purpose.
 * Run as a process of its own (`tsx stack/event-receiver.ts`, for a fault round that freezes it): EVENT_RECEIVER_PORT,
 * EVENT_RECEIVER_SECRETS (comma-separated whsec_ secrets, or set later with POST /_receiver/secrets); its figures at
 * GET /_receiver/summary.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { pathToFileURL } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { serveOnLoopback } from './loopback-server.js';

export interface ReceivedEvent {
  id: string;
  type: string;
  orderNo: string;
  /** When the event happened, by the order's record (its `created`). */
  createdMs: number;
  /** When this receiver first accepted it. */
  receivedMs: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** What the receiver answers a verified request: a status (with headers), or nothing for `hangMs`. */
export type ReceiverAnswer = { status: number; headers?: Record<string, string> } | { hangMs: number };

export interface ReceiverSummary {
  /** Verified requests, repeats included. */
  requests: number;
  /** Requests whose signature no secret verified (answered 400). */
  unverified: number;
  /** Distinct events accepted (answered 2xx), each counted once however often it came. */
  accepted: number;
  /** Events accepted again after their first acceptance (a retry whose 2xx was lost): deduplicated. */
  duplicates: number;
  byType: Record<string, number>;
  /** The ids accepted, in the order first accepted. */
  acceptedIds: string[];
  /** From the event's `created` to its first acceptance. */
  delayMs: { p50: number; p99: number; max: number } | null;
}

export interface EventReceiver {
  url: string;
  /** Accepted events, first acceptance only, in arrival order. */
  received: ReceivedEvent[];
  /** Verified requests per event id, repeats included. */
  requests: Map<string, number>;
  summary(): ReceiverSummary;
  setSecrets(secrets: readonly string[]): void;
  close(): Promise<void>;
}

export async function startEventReceiver(
  options: {
    /** The secrets any of which may sign; a function is asked at each request (a test's rotation). */
    secrets?: readonly string[] | (() => readonly string[]);
    /** Per verified request; `seen`: how many times this id came, this one included. Default: 204. */
    answer?: (id: string, seen: number) => ReceiverAnswer;
    port?: number;
    path?: string;
  } = {},
): Promise<EventReceiver> {
  let fixed: readonly string[] = typeof options.secrets === 'function' ? [] : [...(options.secrets ?? [])];
  let secrets: () => readonly string[] = typeof options.secrets === 'function' ? options.secrets : () => fixed;
  const received: ReceivedEvent[] = [];
  const accepted = new Set<string>();
  const requests = new Map<string, number>();
  let unverified = 0;
  let duplicates = 0;
  const summary = (): ReceiverSummary => {
    const delays = received.map((event) => event.receivedMs - event.createdMs).sort((a, b) => a - b);
    const at = (q: number) => delays[Math.min(delays.length - 1, Math.floor(q * delays.length))] ?? 0;
    const byType: Record<string, number> = {};
    for (const event of received) byType[event.type] = (byType[event.type] ?? 0) + 1;
    return {
      requests: [...requests.values()].reduce((sum, n) => sum + n, 0),
      unverified,
      accepted: received.length,
      duplicates,
      byType,
      acceptedIds: received.map((event) => event.id),
      delayMs: delays.length ? { p50: at(0.5), p99: at(0.99), max: delays[delays.length - 1] ?? 0 } : null,
    };
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.url === '/_receiver/summary') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(summary()));
        return;
      }
      if (req.url === '/_receiver/secrets' && req.method === 'POST') {
        fixed = JSON.parse(body) as string[];
        secrets = () => fixed;
        res.writeHead(204).end();
        return;
      }
      const headers = req.headers as Record<string, string>;
      const verified = secrets().some((secret) => {
        try {
          new Webhook(secret).verify(body, headers);
          return true;
        } catch {
          return false;
        }
      });
      if (!verified) {
        unverified++;
        res.writeHead(400).end('signature not verified');
        return;
      }
      const event = JSON.parse(body) as {
        id: string;
        type: string;
        created: string;
        data: { order: { orderNo: string } };
      };
      const seen = (requests.get(event.id) ?? 0) + 1;
      requests.set(event.id, seen);
      const reply = options.answer?.(event.id, seen) ?? { status: 204 };
      if ('hangMs' in reply) {
        setTimeout(() => res.writeHead(204).end(), reply.hangMs);
        return;
      }
      if (reply.status >= 200 && reply.status < 300) {
        if (accepted.has(event.id)) duplicates++;
        else {
          accepted.add(event.id);
          received.push({
            id: event.id,
            type: event.type,
            orderNo: event.data.order.orderNo,
            createdMs: Date.parse(event.created),
            receivedMs: Date.now(),
            headers: req.headers,
            body,
          });
        }
      }
      res.writeHead(reply.status, reply.headers).end();
    });
  });
  const served = await serveOnLoopback(server, options.port ?? 0);
  return {
    url: `${served.url}${options.path ?? '/hooks'}`,
    received,
    requests,
    summary,
    setSecrets: (next) => {
      fixed = [...next];
      secrets = () => fixed;
    },
    close: served.stop,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const receiver = await startEventReceiver({
    port: Number(process.env.EVENT_RECEIVER_PORT ?? 0),
    secrets: (process.env.EVENT_RECEIVER_SECRETS ?? '').split(',').filter((secret) => secret !== ''),
  });
  console.log(`event receiver on ${receiver.url}`);
  const stop = () => void receiver.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
