import { asyncLocalStorage, heartbeat } from '@temporalio/activity';

/** Tells Temporal the activity is alive during a long page; a no-op when called outside an activity (tests). */
export function beat(details?: unknown): void {
  if (asyncLocalStorage.getStore()) heartbeat(details);
}
