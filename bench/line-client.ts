/**
 * The line benchmark's scheduling (bench/line.ts; its HTTP is toolkit/http-client.ts, at most `connections` requests in
 * flight): a min-heap of due times that wakes each of 100,000 shoppers when its Retry-After says, with one timer armed
 * for the earliest. Built to cost the load generator little: it shares the machine's two cores with the servers it
 * measures.
 */
/**
 * Due times of items 0..capacity-1, each with at most one pending: a binary min-heap in typed arrays (no object per
 * entry), so 100,000 shoppers' next polls cost a few MB and O(log n) each.
 */
export class DueHeap {
  private readonly due: Float64Array;
  private readonly item: Int32Array;
  private size = 0;

  constructor(capacity: number) {
    this.due = new Float64Array(capacity);
    this.item = new Int32Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** The earliest due time, or Infinity when empty. */
  peek(): number {
    return this.size === 0 ? Number.POSITIVE_INFINITY : this.due[0]!;
  }

  push(at: number, item: number): void {
    if (this.size === this.due.length) throw new Error('DueHeap is full');
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.due[parent]! <= at) break;
      this.due[i] = this.due[parent]!;
      this.item[i] = this.item[parent]!;
      i = parent;
    }
    this.due[i] = at;
    this.item[i] = item;
  }

  /** Removes the earliest; its item and due time. */
  pop(): { item: number; at: number } {
    if (this.size === 0) throw new Error('DueHeap is empty');
    const top = { item: this.item[0]!, at: this.due[0]! };
    const lastDue = this.due[--this.size]!;
    const lastItem = this.item[this.size]!;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= this.size) break;
      const right = left + 1;
      const child = right < this.size && this.due[right]! < this.due[left]! ? right : left;
      if (this.due[child]! >= lastDue) break;
      this.due[i] = this.due[child]!;
      this.item[i] = this.item[child]!;
      i = child;
    }
    if (this.size > 0) {
      this.due[i] = lastDue;
      this.item[i] = lastItem;
    }
    return top;
  }
}

/**
 * Wakes each item at its due time: one timer, armed for the earliest due time, fires `wake(item, dueAt)` for every
 * item due (late ones first). Never fires an item twice per schedule() call.
 */
export class Scheduler {
  private readonly heap: DueHeap;
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;
  private stopped = false;
  private firing = false;

  constructor(
    capacity: number,
    private readonly wake: (item: number, dueAt: number) => void,
  ) {
    this.heap = new DueHeap(capacity);
  }

  get pending(): number {
    return this.heap.length;
  }

  schedule(at: number, item: number): void {
    this.heap.push(at, item);
    // While firing, the timer is armed once at the end for whatever is then earliest.
    if (!this.firing && at < this.armedFor) this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = this.heap.peek();
    if (this.armedFor === Number.POSITIVE_INFINITY) {
      this.timer = undefined;
      return;
    }
    this.timer = setTimeout(() => this.fire(), Math.max(0, this.armedFor - Date.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    // Those due now; a wake that schedules an item for now is taken on the next turn, not in this loop.
    let taken = 0;
    const limit = this.heap.length;
    this.firing = true;
    try {
      while (taken < limit && this.heap.peek() <= now) {
        const { item, at } = this.heap.pop();
        taken++;
        this.wake(item, at);
      }
    } finally {
      this.firing = false;
      this.arm();
    }
  }
}
