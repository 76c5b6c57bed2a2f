import { asyncLocalStorage, Context, heartbeat } from '@temporalio/activity';

/** Tells Temporal the activity is alive during a long page; a no-op when called outside an activity (tests). */
export function beat(details?: unknown): void {
  if (asyncLocalStorage.getStore()) heartbeat(details);
}

/** Waits `ms`; inside an activity, ends early with a CancelledFailure when it is cancelled (a worker shutting down). */
export function pause(ms: number): Promise<void> {
  return asyncLocalStorage.getStore() ? Context.current().sleep(ms) : new Promise((resolve) => setTimeout(resolve, ms));
}
