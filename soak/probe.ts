/**
 * The soak's probe, preloaded into the compiled API and worker (`node --expose-gc --import ./soak/probe.ts
 * dist/…/main.js`; Node 24 strips the types itself, so this file uses erasable syntax only and imports nothing
 * local). It opens a loopback HTTP server on SOAK_PROBE_PORT; each GET runs a full GC (gc(), hence --expose-gc) and
 * answers as JSON (ProbeAnswer):
 *   - the main isolate's heap after that GC, by V8 heap space too, and the process's RSS
 *   - with `?loop=1`: the event loop's delay since the previous such answer (p50, p99, max), then reset
 *   - the heap of each worker thread (the Temporal worker runs its workflows in one) after that thread's own GC:
 *     another isolate, so the probe's copy in each thread runs it when the main thread asks on a BroadcastChannel
 *   - HTTP requests the process's other servers began so far (diagnostics_channel), the probe's own left out
 * `?snapshot=1` instead writes a heap snapshot of the main isolate into the temp directory and answers its path.
 * Nothing else in the process changes: the probe's server is unref'd and its requests are not counted.
 */
import { subscribe } from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createHistogram } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import { BroadcastChannel, isMainThread, type Worker } from 'node:worker_threads';

export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
}

export interface ProbeAnswer {
  pid: number;
  /** Whether gc() ran before the heap was read (false without --expose-gc). */
  gcForced: boolean;
  /** Bytes, after the forced GC. */
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  rss: number;
  /** Milliseconds over the window since the previous `?loop=1` answer (the probe's own GCs left out); null without. */
  loopDelay: LoopDelay | null;
  loopWindowMs: number | null;
  /** used_heap_size of each live worker thread after its own GC (within THREAD_GC_PATIENCE_MS), bytes. */
  threadsHeapUsed: number[];
  /** Bytes used in each V8 heap space after the GC (old_space, trusted_space, code_space, …), for what moved. */
  spaces: Record<string, number>;
  /** HTTP requests begun on this process's servers since it started (the probe's own excepted). */
  requests: number;
}

/** Where the main thread asks every worker thread to run its GC, and each answers when done. */
const THREAD_GC_CHANNEL = 'soak-probe:thread-gc';
/** A thread busy in a long workflow activation answers late; its heap is read anyway after this. */
const THREAD_GC_PATIENCE_MS = 2_000;

// 10 ms, monitorEventLoopDelay's default: delays the soak judges (tens of ms) are well above it.
const RESOLUTION_MS = 10;

function startProbe(port: number): void {
  // The loop's delay as perf_hooks.monitorEventLoopDelay measures it, a timer's lateness every RESOLUTION_MS, but
  // recorded here (µs) so that the pauses of the probe's own GCs, which are not the app's, can be left out.
  const delays = createHistogram();
  let due = performance.now() + RESOLUTION_MS;
  let windowStart = Date.now();
  setInterval(() => {
    const now = performance.now();
    delays.record(Math.max(1, Math.round((now - due) * 1_000)));
    due = now + RESOLUTION_MS;
  }, RESOLUTION_MS).unref();

  const threads = new Set<Worker>();
  // Published in the parent thread as each worker thread is created (Node's built-in channel).
  subscribe('worker_threads', (message) => {
    const worker = (message as { worker?: Worker }).worker;
    if (!worker) return;
    threads.add(worker);
    worker.once('exit', () => threads.delete(worker));
  });

  let requests = 0;
  const probeServer: Server = createServer((req: IncomingMessage, res) => {
    req.resume();
    const query = new URL(req.url ?? '/', 'http://probe').searchParams;
    if (query.get('snapshot') === '1') {
      // For finding what a failed soak's heap slope is made of: two snapshots minutes apart, compared in DevTools.
      const file = writeHeapSnapshot(join(tmpdir(), `soak-${process.pid}-${Date.now()}.heapsnapshot`));
      // Seconds of pause that are the probe's, not the app's: the loop's delay is measured from now.
      due = performance.now() + RESOLUTION_MS;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ file }));
      return;
    }
    answer(query.get('loop') === '1').then(
      (body) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      },
    );
  });
  subscribe('http.server.request.start', (message) => {
    if ((message as { server?: unknown }).server !== probeServer) requests++;
  });

  const gc = (globalThis as { gc?: () => void }).gc;

  async function answer(withLoop: boolean): Promise<ProbeAnswer> {
    const ms = (micros: number) => micros / 1_000;
    const loopDelay: LoopDelay | null = withLoop
      ? { p50: ms(delays.percentile(50)), p99: ms(delays.percentile(99)), max: ms(delays.max) }
      : null;
    const loopWindowMs = withLoop ? Date.now() - windowStart : null;
    if (withLoop) {
      delays.reset();
      windowStart = Date.now();
    }
    gc?.();
    await collectThreads(threads.size);
    // The tick the GC made late is measured from now: the pause is the probe's.
    due = performance.now() + RESOLUTION_MS;
    const memory = process.memoryUsage();
    const spaces = Object.fromEntries(
      getHeapSpaceStatistics().map((space) => [space.space_name, space.space_used_size]),
    );
    const threadsHeapUsed = await Promise.all(
      [...threads].map(async (worker) => {
        try {
          return (await worker.getHeapStatistics()).used_heap_size;
        } catch {
          return 0; // the thread ended meanwhile
        }
      }),
    );
    return {
      pid: process.pid,
      gcForced: gc !== undefined,
      heapUsed: memory.heapUsed,
      heapTotal: memory.heapTotal,
      external: memory.external,
      arrayBuffers: memory.arrayBuffers,
      rss: memory.rss,
      loopDelay,
      loopWindowMs,
      threadsHeapUsed,
      spaces,
      requests,
    };
  }

  async function collectThreads(count: number): Promise<void> {
    if (count === 0 || !gc) return;
    const channel = new BroadcastChannel(THREAD_GC_CHANNEL);
    try {
      await new Promise<void>((resolve) => {
        let left = count;
        const patience = setTimeout(resolve, THREAD_GC_PATIENCE_MS);
        channel.onmessage = () => {
          if (--left > 0) return;
          clearTimeout(patience);
          resolve();
        };
        channel.postMessage('gc');
      });
    } finally {
      channel.close();
    }
  }

  probeServer.listen(port, '127.0.0.1');
  // The app's own shutdown decides when the process ends.
  probeServer.unref();
}

/** In a worker thread: runs this thread's GC when the main thread's probe asks, and says so. */
function answerThreadGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  const channel = new BroadcastChannel(THREAD_GC_CHANNEL);
  // The thread ends when its owner ends it, not kept alive by the probe.
  channel.unref();
  channel.onmessage = (event) => {
    if ((event as { data?: unknown }).data !== 'gc') return;
    gc?.();
    channel.postMessage('collected');
  };
}

// --import reaches worker threads too (they inherit execArgv): the probe is the main thread's, which sees the others.
if (isMainThread) {
  const port = Number(process.env.SOAK_PROBE_PORT);
  if (!Number.isInteger(port) || port <= 0) throw new Error('soak/probe.ts: SOAK_PROBE_PORT must be a port number');
  startProbe(port);
} else {
  answerThreadGc();
}
