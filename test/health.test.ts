/**
 * /livez, /readyz and /healthz against the real stack, and the API process's shutdown: after
 * SIGTERM it answers /readyz with 503 for SHUTDOWN_DRAIN while still serving, then exits.
 */
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { join, resolve } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { startApi } from '../src/api/server.js';
import { freePort } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { testConfig } from './helpers/env.js';
import { startApiOnOwnRedis } from './helpers/own-redis.js';

const root = resolve(import.meta.dirname, '..');

async function getJson(url: string): Promise<{ status: number; body: any; connection: string | undefined }> {
  return new Promise((done, fail) => {
    get(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        done({
          status: res.statusCode ?? 0,
          body: text ? JSON.parse(text) : undefined,
          connection: res.headers.connection,
        }),
      );
    }).on('error', fail);
  });
}

describe('health probes', () => {
  it('/livez, /readyz and /healthz answer 200 with every dependency up', async () => {
    const api = await startApi(testConfig({ LOG_LEVEL: 'silent' }), 0);
    try {
      expect(await getJson(`${api.url}/livez`)).toMatchObject({ status: 200, body: { status: 'ok' } });
      const ready = { status: 200, body: { status: 'ok', checks: { redis: 'up', mysql: 'up', temporal: 'up' } } };
      expect(await getJson(`${api.url}/readyz`)).toMatchObject(ready);
      expect(await getJson(`${api.url}/healthz`)).toMatchObject(ready);
    } finally {
      await api.close();
    }
  });

  it('a dependency down: /readyz and /healthz 503 naming it, /livez still 200', async () => {
    const { api, redisServer, close } = await startApiOnOwnRedis('readyz');
    try {
      expect((await getJson(`${api.url}/readyz`)).status).toBe(200);
      await redisServer.process.stop();
      const notReady = {
        status: 503,
        body: {
          error: { code: 'UNAVAILABLE', message: 'down: redis' },
          checks: { redis: 'down', mysql: 'up', temporal: 'up' },
        },
      };
      expect(await getJson(`${api.url}/readyz`)).toMatchObject(notReady);
      expect(await getJson(`${api.url}/healthz`)).toMatchObject(notReady);
      expect(await getJson(`${api.url}/livez`)).toMatchObject({ status: 200, body: { status: 'ok' } });
    } finally {
      await close();
    }
  });
});

describe('shutdown', () => {
  it('SIGTERM: /readyz 503 "draining" for SHUTDOWN_DRAIN while requests are still served, then the process exits 0', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const drainMs = 4_000;
    const child = spawn(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'src', 'api', 'main.ts')], {
      cwd: root,
      env: {
        ...process.env,
        ...inject('stackEnv'),
        PORT: String(port),
        SHUTDOWN_DRAIN: `${drainMs}ms`,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; at: number }>((done) =>
      child.once('exit', (code) => done({ code, at: Date.now() })),
    );
    try {
      await waitFor(async () => (await getJson(`${base}/readyz`)).status === 200, {
        what: 'the API process to be ready',
        timeoutMs: 60_000,
        intervalMs: 100,
        retryErrors: true,
      });
      const signalledAt = Date.now();
      child.kill('SIGTERM');
      const draining = await waitFor(
        async () => {
          const reply = await getJson(`${base}/readyz`);
          return reply.status === 503 && reply;
        },
        // A probe connected just as the drain closes idle connections is reset before its request is
        // read (Node's closeIdleConnections); a load balancer's probe tries again, and so does this.
        { what: '/readyz to answer 503 after SIGTERM', timeoutMs: drainMs, intervalMs: 50, retryErrors: true },
      );
      expect(draining.body).toEqual({ error: { code: 'UNAVAILABLE', message: expect.stringMatching(/draining/) } });
      // Still serving: liveness, and the API itself (a real route, answered from MySQL).
      expect(await getJson(`${base}/livez`)).toMatchObject({
        status: 200,
        body: { status: 'ok' },
        connection: 'close',
      });
      expect(await getJson(`${base}/api/sales/NO-SUCH-SKU`)).toMatchObject({
        status: 404,
        body: { error: { code: 'SKU_NOT_FOUND' } },
      });
      expect(Date.now() - signalledAt).toBeLessThan(drainMs);

      const { code, at } = await exited;
      expect(code, output.slice(-2_000)).toBe(0);
      expect(at - signalledAt).toBeGreaterThanOrEqual(drainMs - 100);
      await expect(getJson(`${base}/livez`)).rejects.toThrow();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
