// The worker process: tracing first (it patches ioredis, mysql2 and http as they load), then ./run-worker.ts.
import { startTracing } from '../infra/tracing.js';

startTracing('flash-checkout-worker');
await import('./run-worker.js');
