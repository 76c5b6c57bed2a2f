// Entry point of the workflow bundle: every workflow the worker runs is exported from here.
export { OrderWorkflow } from './order.js';
export { ReconcileWorkflow } from './reconcile.js';
export { PaymentCatchUpWorkflow } from './payments.js';
export { RefundWorkflow } from './refunds.js';
export { EndpointDeliveryWorkflow } from './webhooks.js';
