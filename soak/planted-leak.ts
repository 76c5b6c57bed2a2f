/**
 * A leak planted on purpose (`npm run soak -- --plant-leak`), preloaded into the API only: every HTTP request the
 * process begins (diagnostics_channel 'http.server.request.start') leaves a string of SOAK_LEAK_BYTES_PER_REQUEST
 * random characters in a module-level array that nothing ever empties, as a forgotten per-request cache would. The
 * soak sizes it from its request rate to about twice the heap slope it tolerates, and must then fail on the API's
 * heap slope: the proof that the soak sees a leak of that size. Erasable syntax only, like soak/probe.ts.
 */
import { randomBytes } from 'node:crypto';
import { subscribe } from 'node:diagnostics_channel';
import { isMainThread } from 'node:worker_threads';

const bytes = Number(process.env.SOAK_LEAK_BYTES_PER_REQUEST);
if (!Number.isInteger(bytes) || bytes < 2)
  throw new Error('soak/planted-leak.ts: SOAK_LEAK_BYTES_PER_REQUEST must be an integer ≥ 2');

// Kept alive by this module for the process's life. Strings live on the V8 heap (a Buffer's bytes would not count
// in heapUsed); random hex characters, so no two are alike and none can be shared or deduplicated.
const retained: string[] = [];
// The API's server runs in its main thread (--import reaches worker threads too).
if (isMainThread)
  subscribe('http.server.request.start', () => {
    retained.push(randomBytes(Math.floor(bytes / 2)).toString('hex'));
  });
