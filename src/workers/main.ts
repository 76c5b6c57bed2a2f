// The worker process: tracing first (its instrumentations patch ioredis, mysql2 and http as they are first loaded, so
// nothing else may be loaded before), then the worker itself (./run-worker.ts).
import { startTracing } from '../infra/tracing.js';

startTracing('flash-checkout-worker');
await import('./run-worker.js');
