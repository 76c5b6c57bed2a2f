/**
 * How many orders the worker keeps cached: WORKER_MAX_CACHED_WORKFLOWS, cut to what its heap holds. An order in the
 * cache takes its next message in one workflow task; an evicted one is first replayed from its history (the
 * payment phase of `npm run bench` measures both, docs/performance.md "Payments at a sale's rate"). A sale keeps
 * every unpaid order open for the payment window, so the bound should cover them all; but a cache the heap cannot
 * hold ends in an out-of-memory crash, which is worse than replays. So the bound is the setting, or what the heap
 * limit leaves room for at the measured memory per cached order, whichever is less.
 */

/** Memory one cached order takes in the worker (its workflow context and Core's state): docs/performance.md. */
export const CACHED_ORDER_BYTES = 200 * 1024;
/** Heap kept for everything else: the bundle, activities in flight, the clients and their buffers. */
export const HEAP_RESERVE_BYTES = 768 * 1024 * 1024;

export interface CacheBound {
  /** The orders the worker caches. */
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
