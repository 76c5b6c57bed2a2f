/**
 * How many orders the worker caches: WORKER_MAX_CACHED_WORKFLOWS, cut to what its heap holds. An evicted order is
 * replayed before its next message (docs/performance.md "Payments at a sale's rate"), but a cache the heap cannot hold
 * ends in an out-of-memory crash, which is worse.
 */

/** Memory one cached order takes in the worker (its workflow context and Core's state): docs/performance.md. */
export const CACHED_ORDER_BYTES = 200 * 1024;
/** Heap kept for everything else: the bundle, activities in flight, the clients and their buffers. */
export const HEAP_RESERVE_BYTES = 768 * 1024 * 1024;

export interface CacheBound {
  bound: number;
  /** The setting was more than the heap holds: cut to `bound`. */
  cut: boolean;
  /** The most the heap holds at CACHED_ORDER_BYTES each. */
  heapHolds: number;
}

/** The setting, cut to what a heap of `heapLimitBytes` (V8's heap_size_limit) holds; at least 2 (the SDK's minimum). */
export function cacheBoundForHeap(configured: number, heapLimitBytes: number): CacheBound {
  const heapHolds = Math.max(2, Math.floor((heapLimitBytes - HEAP_RESERVE_BYTES) / CACHED_ORDER_BYTES));
  return { bound: Math.min(configured, heapHolds), cut: configured > heapHolds, heapHolds };
}
