/**
 * A tap in front of the API's Stripe webhook route: the Stripe double delivers its signed events here, the tap sends
 * each on to the API unchanged (the signature covers the body, not the host) and records the API's answer and its
 * latency as the `webhook` class, then answers the double as the API did. The soak's, and the benchmark's payment
 * phase with --provider stripe (bench/processes.ts), which also reads each delivery's event. Not a receiver like
 * stack/event-receiver.ts (the merchant's end of our outgoing events): it relays the double's inbound ones to the API.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpClient } from '../toolkit/http-client.js';

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
  answer: string;
  ms: number;
}

export async function startWebhookTap(
  apiUrl: string | null,
  path: string,
  into?: DeliveryRecorder,
  observe?: (delivery: TappedDelivery) => void,
): Promise<WebhookTap> {
  let api = apiUrl === null ? null : new HttpClient(apiUrl);
  const server: Server = createServer((req, res) => {
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
      void api.request(req.method ?? 'POST', req.url ?? path, { headers, body, timeoutMs: 30_000 }).then((answer) => {
        const status = answer.failure ? null : answer.status;
        into?.record(status, answer.ms);
        observe?.({ event: body, status, answer: answer.body, ms: answer.ms });
        res.writeHead(status ?? 502, { 'content-type': 'application/json' });
        res.end(answer.body);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    retarget: (next) => {
      api?.close();
      api = next === null ? null : new HttpClient(next);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      api?.close();
    },
  };
}
