/** Every workflow type the bundle registers, by the name callers start it with (src/workflows/index.ts). */
import { ORDER_WORKFLOW_TYPE, REFUND_WORKFLOW_TYPE } from './order-workflow.js';

export const RECONCILE_WORKFLOW_TYPE = 'ReconcileWorkflow';
export const CATCH_UP_WORKFLOW_TYPE = 'PaymentCatchUpWorkflow';
export const ENDPOINT_DELIVERY_WORKFLOW_TYPE = 'EndpointDeliveryWorkflow';

/** All Pinned (src/workers/versioning.ts): a build drains once none is open on it (test/bundle.test.ts: all here). */
export const PINNED_WORKFLOW_TYPES: readonly string[] = [
  ORDER_WORKFLOW_TYPE,
  REFUND_WORKFLOW_TYPE,
  RECONCILE_WORKFLOW_TYPE,
  CATCH_UP_WORKFLOW_TYPE,
  ENDPOINT_DELIVERY_WORKFLOW_TYPE,
];
