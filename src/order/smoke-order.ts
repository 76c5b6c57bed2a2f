/** The rollout's smoke order on a version: reserved (no pending start: no starter races it), persisted, cancelled. */
import { type Client, WorkflowIdReusePolicy } from '@temporalio/client';
import { versionString, type WorkerVersion } from '../infra/worker-deployments.js';
import type { RedisInventory } from '../redis/inventory.js';
import { Refusal } from '../infra/refusal.js';
import {
  awaitPersistedUpdate,
  cancelUpdate,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  ROLLOUT_SMOKE_SKU,
  type OrderInput,
  type OrderWorkflowSignature,
} from '../model/order-workflow.js';
import { newOrderNo } from './order-numbers.js';
import { z } from 'zod';
import { int, named } from '../infra/schema-fields.js';

/** The rollout's own sale: units that only smoke orders take, each given back by its cancel. */
export const SMOKE_SALE = {
  sku: ROLLOUT_SMOKE_SKU,
  name: 'Rollout smoke orders (not for sale)',
  priceCents: 100,
  stock: 10,
  perUserLimit: 10,
} as const;

/** The smoke order's outcome: persisted on the build, cancelled, closed (POST /api/admin/deployment/smoke-orders). */
export const smokeOrderResultSchema = named('SmokeOrderResult', {
  orderNo: z.string(),
  status: z.literal('CANCELLED'),
  ranOn: z.string().meta({ description: 'The version its workflow ran on: `<deployment name>.<build id>`.' }),
  ms: int.meta({ description: 'From its reservation to its close.' }),
});

export type SmokeOrderResult = z.infer<typeof smokeOrderResultSchema>;

export async function runSmokeOrder(deps: {
  client: Client;
  taskQueue: string;
  /** Where SMOKE_SALE is put on sale the first time. */
  sales: { create(sale: typeof SMOKE_SALE): Promise<unknown> };
  inventory: Pick<RedisInventory, 'reserve'>;
  version: WorkerVersion;
}): Promise<SmokeOrderResult> {
  const { client, inventory, version } = deps;
  const startedAt = Date.now();
  await deps.sales.create({ ...SMOKE_SALE }).catch((err: unknown) => {
    if (!(err instanceof Refusal && err.code === 'SALE_EXISTS')) throw err;
  });
  const orderNo = newOrderNo();
  const reserved = await inventory.reserve({ orderNo, sku: SMOKE_SALE.sku, userId: 'rollout-smoke', quantity: 1 });
  if (reserved.outcome !== 'RESERVED')
    throw new Error(`the smoke sale ${SMOKE_SALE.sku} refused a unit (${reserved.outcome}): is a smoke order stuck?`);
  const input: OrderInput = {
    orderNo,
    sku: SMOKE_SALE.sku,
    userId: 'rollout-smoke',
    quantity: 1,
    unitPriceCents: reserved.priceCents,
    createdAt: new Date().toISOString(),
    paymentWindow: '5m',
  };
  const handle = await client.workflow.start<OrderWorkflowSignature>(ORDER_WORKFLOW_TYPE, {
    workflowId: orderWorkflowId(orderNo),
    taskQueue: deps.taskQueue,
    args: [input],
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    versioningOverride: { pinnedTo: version },
  });
  const deadline = Date.now() + 30_000;
  const bounded = <T>(what: string, run: Promise<T>): Promise<T> =>
    Promise.race([
      run,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`smoke order ${orderNo}: ${what} took longer than the smoke's deadline`)),
          Math.max(0, deadline - Date.now()),
        ).unref(),
      ),
    ]);
  const persisted = await bounded('its persist', handle.executeUpdate(awaitPersistedUpdate));
  if (persisted.status !== 'AWAITING_PAYMENT')
    throw new Error(`smoke order ${orderNo} is ${persisted.status} after its persist, not AWAITING_PAYMENT`);
  await bounded('its cancel', handle.executeUpdate(cancelUpdate));
  const closed = await bounded('its close', handle.result());
  if (closed.status !== 'CANCELLED') throw new Error(`smoke order ${orderNo} closed ${closed.status}, not CANCELLED`);
  // The version the order's workflow ran on, as the server recorded it.
  const ran = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion;
  const ranOn = ran?.buildId ? versionString({ deploymentName: ran.deploymentName ?? '', buildId: ran.buildId }) : null;
  const wanted = versionString(version);
  if (ranOn !== wanted) throw new Error(`smoke order ${orderNo} ran on ${ranOn ?? 'no version'}, not ${wanted}`);
  return { orderNo, status: 'CANCELLED' as const, ranOn: wanted, ms: Date.now() - startedAt };
}
