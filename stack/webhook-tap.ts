/**
 * A tap in front of the API's Stripe webhook route: the Stripe double delivers its signed events here, the tap sends
 * each on to the API unchanged (the signature covers the body, not the host) and answers the double as the API did.
 * It hands each delivery and the API's answer to its caller: the soak counts them as its `webhook` class, the
 * benchmark's payment phase with --provider stripe (bench/processes.ts) and the fault suite's Stripe rounds
 * (chaos/rounds/stripe-tools.ts) read each delivery's event and verdict. Not a receiver like stack/event-receiver.ts
 * (the merchant's end of our outgoing events): it relays the double's inbound ones to the API.
 */
import { createServer } from 'node:http';
import { HttpClient } from '../toolkit/http-client.js';
import { serveOnLoopback } from './loopback-server.js';

export interface WebhookTap {
  /** Where the double delivers: the tap's address with the API's path. */
  url: string;
  /** Sends the deliveries to this API from now on; null: to none (answered 503, so the double retries). */
  retarget(apiUrl: string | null): void;
  close(): Promise<void>;
}

/** Where the tap records each delivery's answer (the soak's `webhook` request class); null status: no answer. */
export interface DeliveryRecorder {
  record(status: number | null, ms: number): void;
}

/** One delivery as the API answered it: the event (its JSON), the API's status (null: no answer), answer, latency. */
export interface TappedDelivery {
  event: string;
  status: number | null;
  /** The API's body; with no answer, the tap's own error saying why (what the double was answered, with 502). */
  answer: string;
  /** When the tap received it (epoch ms). */
  at: number;
  ms: number;
}

/** How long the tap waits for the API's answer (Stripe itself gives up sooner; the double's own timeout decides). */
const FORWARD_TIMEOUT_MS = 30_000;

export async function startWebhookTap(
  apiUrl: string | null,
  path: string,
  into?: DeliveryRecorder,
  observe?: (delivery: TappedDelivery) => void,
): Promise<WebhookTap> {
  let api = apiUrl === null ? null : new HttpClient(apiUrl);
  const server = createServer((req, res) => {
    const at = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (!api) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":"no API behind the tap"}');
        return;
      }
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name)),
      );
      const body = Buffer.concat(chunks).toString('utf8');
      const sent = { headers, body, timeoutMs: FORWARD_TIMEOUT_MS };
      void api.request(req.method ?? 'POST', req.url ?? path, sent).then((answer) => {
        const status = answer.failure ? null : answer.status;
        const text = answer.failure
          ? JSON.stringify({ error: { code: 'TAP', message: answer.failure.message } })
          : answer.body;
        into?.record(status, answer.ms);
        observe?.({ event: body, status, answer: text, at, ms: answer.ms });
        res.writeHead(status ?? 502, { 'content-type': 'application/json' });
        res.end(text);
      });
    });
  });
  const served = await serveOnLoopback(server);
  return {
    url: `${served.url}${path}`,
    retarget: (next) => {
      api?.close();
      api = next === null ? null : new HttpClient(next);
    },
    close: async () => {
      await served.stop();
      api?.close();
    },
  };
}
