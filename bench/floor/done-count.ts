/**
 * How the bench learns that a floor workflow is "persisted" (its local activity ran) without
 * adding load to what it measures: the floor worker counts completions in memory and publishes
 * the count to a file at most every PUBLISH_MS while it changes (nothing when idle); the bench reads
 * that file as it reads MySQL for ours. A query per workflow or a visibility count would be
 * served by the Temporal server and the worker, the very processes being measured.
 */
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** At most this late after a completion the file shows it: ours' MySQL count is polled every 20 ms. */
const PUBLISH_MS = 10;

/** The worker's side: a counter whose value reaches `file` within PUBLISH_MS once first flushed. */
export function publishedCounter(file: string) {
  let count = 0;
  let pending: NodeJS.Timeout | undefined;
  // Written whole, then renamed over the old one: a reader never sees a half-written number.
  const publish = () => {
    pending = undefined;
    writeFileSync(`${file}.tmp`, String(count));
    renameSync(`${file}.tmp`, file);
  };
  return {
    increment(): void {
      count++;
      pending ??= setTimeout(publish, PUBLISH_MS);
    },
    /** Publishes the count at once: the first time (the file appears), and on shutdown. */
    flush(): void {
      clearTimeout(pending);
      publish();
    },
  };
}

/** The bench's side: the count published so far; 0 before the worker wrote it. */
export async function readPublishedCount(file: string): Promise<number> {
  if (!existsSync(file)) return 0;
  const count = Number(await readFile(file, 'utf8'));
  if (!Number.isInteger(count)) throw new Error(`${file}: not a count`);
  return count;
}
