/** The worker's cache bound: the setting, cut to what the heap holds at the measured memory per cached order. */
import { describe, expect, it } from 'vitest';
import { CACHED_ORDER_BYTES, cacheBoundForHeap, HEAP_RESERVE_BYTES } from '../src/workers/cache-sizing.js';

const MB = 1_048_576;

describe('cacheBoundForHeap', () => {
  it('keeps a setting the heap holds', () => {
    // Node's default on a 24 GB machine: a 4,288 MB heap holds (4,288 - 768) MB / 200 KB ≈ 18,022 orders.
    expect(cacheBoundForHeap(15_000, 4_288 * MB)).toEqual({ bound: 15_000, cut: false, heapHolds: 18_022 });
  });

  it('cuts a setting the heap cannot hold to what it can', () => {
    const heap = 2_048 * MB;
    const holds = Math.floor((heap - HEAP_RESERVE_BYTES) / CACHED_ORDER_BYTES);
    expect(cacheBoundForHeap(15_000, heap)).toEqual({ bound: holds, cut: true, heapHolds: holds });
    expect(holds * CACHED_ORDER_BYTES + HEAP_RESERVE_BYTES).toBeLessThanOrEqual(heap);
  });

  it('never goes below the SDK minimum of 2, however small the heap', () => {
    expect(cacheBoundForHeap(15_000, 256 * MB)).toMatchObject({ bound: 2, cut: true });
    expect(cacheBoundForHeap(2, 256 * MB)).toMatchObject({ bound: 2, cut: false });
  });
});
