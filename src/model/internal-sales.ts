/** Sales the service runs for itself: their orders are real orders, but their facts never reach a merchant. */

/** `npm run rollout`'s smoke orders (src/order/smoke-order.ts): one per rollout, cancelled at once. */
export const ROLLOUT_SMOKE_SKU = 'ROLLOUT-SMOKE';
