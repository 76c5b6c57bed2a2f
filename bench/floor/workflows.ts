/**
 * The floor workflow: the cheapest workflow of an order's shape on this stack, the reference the
 * pipeline benchmark measures OrderWorkflow against (bench/floor/phase.ts). Started by a client,
 * one local activity that does nothing (where OrderWorkflow's persistOrder runs), then a
 * 30-minute durable wait (an order awaiting payment), answering a status query meanwhile. No
 * search attributes, no I/O: whatever OrderWorkflow costs above this is its own.
 */
import { condition, defineQuery, proxyLocalActivities, setHandler } from '@temporalio/workflow';
import type { FloorActivities } from './activities.js';

export const FLOOR_WORKFLOW_TYPE = 'FloorWorkflow';

export const floorStatusQuery = defineQuery<{ ready: boolean }>('status');

// The same timeout as persistOrder's, so the local activity is scheduled alike.
const { noop } = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '5s' });

export async function FloorWorkflow(): Promise<void> {
  let ready = false;
  setHandler(floorStatusQuery, () => ({ ready }));
  await noop();
  ready = true;
  await condition(() => false, '30m');
}
