/**
 * The guarded views the API reaches Redis and MySQL through (`guarded`), without servers: each
 * listed method runs under its per-call deadline and its guard's breaker, whether or not it is
 * declared `async`; what is not listed is not on the view. test/dependency-freeze.test.ts shows
 * the same against frozen servers, through the real API.
 */
import { connect } from 'node:net';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { DependencyGuard, DependencyUnavailableError, guarded } from '../src/infra/dependency-guard.js';

const TIMEOUT_MS = 50;

/** A client whose methods hang or fail as told; none of them is declared `async`. */
class FakeClient {
  calls = 0;
  constructor(private readonly answer: () => Promise<string>) {}

  /** Returns a promise without being `async`: the guardAll Proxy let this one through unbounded. */
  fetch(key: string): Promise<string> {
    this.calls++;
    return this.answer().then((value) => `${key}=${value}`);
  }

  also(): Promise<string> {
    return this.fetch('also');
  }

  label(): string {
    return 'not a call to a dependency';
  }
}

const newGuard = () => new DependencyGuard('redis', { failureThreshold: 2, halfOpenAfterMs: 60_000 });
const never = () => new Promise<string>(() => {});

describe('guarded', () => {
  it('bounds a listed method that returns a promise without being async: DependencyUnavailableError (deadline) after timeoutMs', async () => {
    const view = guarded(new FakeClient(never), newGuard(), TIMEOUT_MS, ['fetch']);
    const began = Date.now();
    const err: unknown = await view.fetch('a').catch((caught: unknown) => caught);
    expect(err).toBeInstanceOf(DependencyUnavailableError);
    expect(err).toMatchObject({ dependency: 'redis', reason: 'deadline' });
    expect(Date.now() - began).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    expect(Date.now() - began).toBeLessThan(TIMEOUT_MS + 1_000);
  });

  it("counts its failures for the guard's breaker, which then refuses at once without calling the client", async () => {
    const guard = newGuard();
    const client = new FakeClient(() => Promise.reject(new Error('connection refused')));
    const view = guarded(client, guard, TIMEOUT_MS, ['fetch']);
    for (let i = 0; i < 2; i++) await expect(view.fetch('a')).rejects.toMatchObject({ reason: 'failed' });
    expect(guard.state).toBe('open');
    const refused: unknown = await view.fetch('a').catch((caught: unknown) => caught);
    expect(refused).toMatchObject({ reason: 'breaker-open' });
    // A refusal is an answer, not a bug: no stack of its own (an open breaker refuses thousands a second).
    expect((refused as Error).stack).not.toMatch(/\n\s+at /);
    expect(client.calls).toBe(2);
  });

  it('answers as the client does when it answers in time, with the client as `this`', async () => {
    const view = guarded(new FakeClient(() => Promise.resolve('1')), newGuard(), TIMEOUT_MS, ['fetch', 'also']);
    expect(await view.fetch('a')).toBe('a=1');
    expect(await view.also()).toBe('also=1');
  });

  it('offers the listed methods and nothing else, and lists only methods returning promises', () => {
    const view = guarded(new FakeClient(never), newGuard(), TIMEOUT_MS, ['fetch']);
    expect(Object.keys(view)).toEqual(['fetch']);
    // @ts-expect-error not listed, so not on the view: it could not be called unguarded
    expect(view.also).toBeUndefined();
    // @ts-expect-error a method that returns no promise cannot be guarded
    guarded(new FakeClient(never), newGuard(), TIMEOUT_MS, ['label']);
  });
});

describe('slow is not down', () => {
  /**
   * A loopback echo server on a thread of its own: it answers while this thread's event loop is
   * blocked, so the answer waits in the socket, as a live Redis's does for a busy API.
   */
  async function echoServer(): Promise<{ ask: () => Promise<string>; close: () => Promise<void> }> {
    const thread = new Worker(
      `const net = require('node:net'); const { parentPort } = require('node:worker_threads');
       const server = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('error', () => {}); });
       server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));`,
      { eval: true },
    );
    const port = await new Promise<number>((resolve) => thread.once('message', resolve));
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    return {
      ask: () =>
        new Promise<string>((resolve) => {
          socket.once('data', (data) => resolve(data.toString()));
          socket.write('pong');
        }),
      close: async () => {
        socket.destroy();
        await thread.terminate();
      },
    };
  }

  const blockEventLoop = (ms: number) => {
    const until = Date.now() + ms;
    while (Date.now() < until);
  };

  it('an answer that arrived in time is not a deadline hit, even when the busy event loop runs the timer first; the breaker stays closed', async () => {
    const echo = await echoServer();
    try {
      const guard = new DependencyGuard('redis', { failureThreshold: 1, halfOpenAfterMs: 60_000 });
      const view = guarded({ ask: echo.ask }, guard, TIMEOUT_MS, ['ask']);
      for (let i = 0; i < 5; i++) {
        const answer = view.ask();
        // The reply lands in the socket within a millisecond; the loop is busy for 4 × the deadline.
        blockEventLoop(TIMEOUT_MS * 4);
        expect(await answer).toBe('pong');
      }
      expect(guard.state).toBe('closed');
    } finally {
      await echo.close();
    }
  });

  it('a dependency that does not answer at all still runs out of time and opens the breaker', async () => {
    const guard = new DependencyGuard('redis', { failureThreshold: 2, halfOpenAfterMs: 60_000 });
    const view = guarded(new FakeClient(never), guard, TIMEOUT_MS, ['fetch']);
    for (let i = 0; i < 2; i++) await expect(view.fetch('a')).rejects.toMatchObject({ reason: 'deadline' });
    expect(guard.state).toBe('open');
  });
});
