/** How many orders the worker caches: an evicted order replays (docs/performance.md), an overfull heap crashes. */

/** Memory one cached order takes in the worker (its workflow context and Core's state): docs/performance.md. */
export const CACHED_ORDER_BYTES = 200 * 1024;
/** Heap kept for everything else: the bundle, activities in flight, the clients and their buffers. */
export const HEAP_RESERVE_BYTES = 768 * 1024 * 1024;

/** The setting, cut to what a heap of `heapLimitBytes` (V8's heap_size_limit) holds; at least 2 (the SDK's minimum). */
export function cacheBoundForHeap(configured: number, heapLimitBytes: number) {
  const heapHolds = Math.max(2, Math.floor((heapLimitBytes - HEAP_RESERVE_BYTES) / CACHED_ORDER_BYTES));
  return { bound: Math.min(configured, heapHolds), cut: configured > heapHolds, heapHolds };
}
