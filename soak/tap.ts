/**
 * A tap in front of the API's Stripe webhook route: the Stripe double delivers its signed events here, the tap sends
 * each on to the API unchanged (the signature covers the body, not the host) and records the API's answer and its
 * latency as the `webhook` class, then answers the double as the API did.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpClient, type RequestClass } from './http.js';

export interface WebhookTap {
  /** Where the double delivers: the tap's address with the API's path. */
  url: string;
  close(): Promise<void>;
}

export async function startWebhookTap(apiUrl: string, path: string, into: RequestClass): Promise<WebhookTap> {
  const api = new HttpClient(apiUrl);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name)),
      );
      void api
        .send(req.method ?? 'POST', req.url ?? path, {
          headers,
          body: Buffer.concat(chunks).toString('utf8'),
          timeoutMs: 30_000,
          into,
        })
        .then((answer) => {
          res.writeHead(answer.status ?? 502, { 'content-type': 'application/json' });
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
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      api.close();
    },
  };
}
