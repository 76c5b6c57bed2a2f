/**
 * The one polling loop of the code base: tests, the benchmark, the stack launcher and the fault
 * suite all wait for a condition through it, never with a fixed sleep.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** What is waited for, for the timeout message ("order X to be PAID"); a function to say how far it got. */
  what: string | (() => string);
  timeoutMs: number;
  /** First pause between probes; grows by `backoff` up to `maxIntervalMs`. */
  intervalMs?: number;
  backoff?: number;
  maxIntervalMs?: number;
  /** A probe that throws counts as "not yet" (a server still starting) instead of failing the wait. */
  retryErrors?: boolean;
  /** Checked before each probe: a reason to stop waiting at once (e.g. the process exited). */
  abortIf?: () => string | undefined;
}

export class WaitTimeoutError extends Error {}

/**
 * Calls `probe` until it returns a value other than undefined, null or false, and returns that
 * value. Throws WaitTimeoutError after `timeoutMs`, naming what was awaited and the last error.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let delay = options.intervalMs ?? 50;
  let lastError = '';
  for (;;) {
    const aborted = options.abortIf?.();
    if (aborted) throw new Error(`stopped waiting for ${describe(options.what)}: ${aborted}`);
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      if (!options.retryErrors) throw err;
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) {
      throw new WaitTimeoutError(
        `timed out after ${options.timeoutMs} ms waiting for ${describe(options.what)}${lastError ? ` (last error: ${lastError})` : ''}`,
      );
    }
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
    delay = Math.min(delay * (options.backoff ?? 1), options.maxIntervalMs ?? Number.POSITIVE_INFINITY);
  }
}

function describe(what: WaitOptions['what']): string {
  return typeof what === 'function' ? what() : what;
}
