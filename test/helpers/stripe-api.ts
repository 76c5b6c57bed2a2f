/**
 * Stripe's API for a test file: stripe-mock (Stripe's own mock server, installed by
 * scripts/install-tools.sh) behind a loopback HTTP relay that records every call the adapter
 * makes (method, path, idempotency key, form body) and can answer the next calls of a path with
 * a 5xx instead of relaying them, as Stripe does when it is unwell. The relay injects faults; every
 * answer the adapter reads is stripe-mock's. With STRIPE_RELAY_LOG=<file> every call is also appended to
 * that file as a JSON line once answered (to read which calls an order made, e.g. for a closing note).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../stack/process.js';
import { loadToolPaths } from '../../stack/services.js';
import { startStripeMock, type RunningStripeMock } from '../../stack/stripe-mock.js';

export interface StripeCall {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  /** The form body, decoded (`metadata[orderNo]` keys as Stripe's form encoding writes them). */
  form: Record<string, string>;
  /** The status the adapter got. */
  status: number;
}

export interface StripeApi {
  /** STRIPE_API_URL for the app: the relay. */
  url: string;
  /** The real server, for freezing it (SIGSTOP) in fault tests. */
  mock: RunningStripeMock;
  calls: StripeCall[];
  /** Calls whose path starts with `prefix`. */
  callsTo(method: string, prefix: string): StripeCall[];
  /** The next `count` calls to paths starting with `prefix` are answered `status` (Stripe's api_error body). */
  failNext(prefix: string, count: number, status?: number): void;
  stop(): Promise<void>;
}

export async function startStripeApi(): Promise<StripeApi> {
  const mock = await startStripeMock({
    tools: loadToolPaths(),
    dataDir: mkdtempSync(join(tmpdir(), 'stripe-mock-')),
    port: await freePort(),
  });
  const target = new URL(mock.url);
  const calls: StripeCall[] = [];
  const failures: { prefix: string; left: number; status: number }[] = [];
  const server: Server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const call: StripeCall = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        idempotencyKey: header(req, 'idempotency-key'),
        form: Object.fromEntries(new URLSearchParams(body)),
        status: 0,
      };
      calls.push(call);
      const log = process.env.STRIPE_RELAY_LOG;
      if (log) res.on('finish', () => appendFileSync(log, `${JSON.stringify(call)}\n`));
      const failure = failures.find((f) => f.left > 0 && call.path.startsWith(f.prefix));
      if (failure) {
        failure.left--;
        call.status = failure.status;
        res.writeHead(failure.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { type: 'api_error', message: 'injected by the test relay' } }));
        return;
      }
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          call.status = answer.statusCode ?? 0;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => {
        call.status = 502;
        res.destroy();
      });
      upstream.end(body);
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    mock,
    calls,
    callsTo: (method, prefix) => calls.filter((c) => c.method === method && c.path.startsWith(prefix)),
    failNext: (prefix, count, status = 500) => failures.push({ prefix, left: count, status }),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await mock.process.stop();
    },
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
