/**
 * OrderWorkflow on the real Temporal dev server (the one `npm start` runs), with the production
 * worker factory and the prebuilt bundle: it takes a signal and answers the status query.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { RedisInventory } from '../src/redis/inventory.js';
import { newOrderNo } from '../src/order/order-numbers.js';
import { storedPayment } from '../src/payments/receiver.js';
import { waitFor } from '../stack/wait-for.js';
import {
  ORDER_SKU_SEARCH_ATTRIBUTE,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  paymentAppliedSignal,
  statusQuery,
} from '../src/model/order-workflow.js';
import type { OrderWorkflow } from '../src/workflows/order.js';
import { testConfig } from './helpers/env.js';
import { clientsTest } from './helpers/stack-test.js';
import { expectInvariants, putOnSale, saleReport } from './helpers/fixtures.js';
import { startTestWorker } from './helpers/worker.js';

const config = testConfig({ TEMPORAL_TASK_QUEUE: `order-dev-${randomUUID()}` });
const it = clientsTest(config).extend('worker', { scope: 'file' }, async ({ clients }, { onCleanup }) => {
  const worker = await startTestWorker({ config, stores: clients.stores, redis: clients.redis });
  onCleanup(() => worker.close());
  return worker;
});

describe('OrderWorkflow on the Temporal dev server', () => {
  it('answers the status query and takes the payment signal', async ({ clients, worker: _worker }) => {
    const { stores, redis, temporal: client } = clients;
    const sale = await putOnSale(stores, redis, { stock: 10 });
    const orderNo = newOrderNo();
    const userId = 'dev-server-shopper';
    expect(
      (
        await new RedisInventory(redis, config.temporal.taskQueue).reserve({
          orderNo,
          sku: sale.sku,
          userId,
          quantity: 1,
        })
      ).outcome,
    ).toBe('RESERVED');
    const handle = await client.workflow.start<typeof OrderWorkflow>(ORDER_WORKFLOW_TYPE, {
      workflowId: orderWorkflowId(orderNo),
      taskQueue: config.temporal.taskQueue,
      args: [
        {
          orderNo,
          sku: sale.sku,
          userId,
          quantity: 1,
          unitPriceCents: sale.priceCents,
          createdAt: new Date().toISOString(),
          paymentWindow: '30m',
        },
      ],
      // As the order client starts orders: operators find them by SKU.
      typedSearchAttributes: [{ key: ORDER_SKU_SEARCH_ATTRIBUTE, value: sale.sku }],
    });
    const state = await waitFor(
      async () => {
        const current = await handle.query(statusQuery);
        return current.status === 'AWAITING_PAYMENT' && current;
      },
      { what: `${orderNo} to await payment`, timeoutMs: 10_000 },
    );
    expect(state).toMatchObject({ orderNo, status: 'AWAITING_PAYMENT', totalCents: sale.priceCents });
    // The Web UI's filter works from the first orders on, although the dev server reads search
    // attributes from its cache (system.forceSearchAttributesCacheRefreshOnRead=false).
    await waitFor(
      async () =>
        (await client.workflow.count(`WorkflowId = '${handle.workflowId}' AND OrderSku = '${sale.sku}'`)).count === 1,
      {
        what: `${orderNo} listed by its SKU`,
        timeoutMs: 10_000,
      },
    );
    // As the webhook takes it: recorded and applied by the order's row, then the payment Signal.
    const { row } = await stores.payments.recordPayment(
      { eventId: `evt-${orderNo}`, orderNo, amountCents: sale.priceCents },
      'webhook',
    );
    await handle.signal(paymentAppliedSignal, storedPayment(row));
    expect(await handle.result()).toMatchObject({ status: 'PAID' });
    // The query still answers on the closed workflow (this client does not reject closed ones).
    expect((await handle.query(statusQuery)).status).toBe('PAID');
    // The status is not written to visibility (the query and the admin views answer it).
    const described = await handle.describe();
    expect(described.searchAttributes.OrderStatus).toBeUndefined();
    expect(described.searchAttributes.OrderSku).toEqual([sale.sku]);
    expectInvariants(await saleReport(stores, redis, sale.sku));
  });
});
