/** The one read of an order (docs/architecture.md): pending start, then row; its workflow only while MySQL is out. */
import type { OrderRow } from '../db/rows.js';
import type { OrderStore } from '../db/orders.js';
import { clientSecretContext, type PaymentStore } from '../db/payments.js';
import type { TextSealer } from '../infra/payload-codec.js';
import {
  boundBy,
  Deadline,
  DeadlineExceededError,
  DependencyUnavailableError,
  type DependencyGuard,
} from '../infra/dependency-guard.js';
import { activeSince, type ActiveSale, type RedisInventory } from '../redis/inventory.js';
import {
  pendingOrderState,
  type OrderInput,
  type OrderState,
  type PaymentIntentHandle,
} from '../model/order-workflow.js';
import { z } from 'zod';
import { CANCEL_REASONS, DISPUTE_STANDINGS } from '../model/order-workflow.js';
import { int, isoTime, named, orderNoSchema, orderStatusSchema, skuSchema } from '../infra/schema-fields.js';

// The order as its shopper sees it (OpenAPI `Order`): no user id or payments; the PaymentIntent only while payable.
/** A card holder's dispute of an order's payment, as the order shows it. */
export const disputeSchema = named('Dispute', {
  standing: z.enum(DISPUTE_STANDINGS).meta({
    description: 'OPEN (the order is DISPUTED) while the bank decides; WON (PAID again) or LOST (REFUNDED).',
  }),
  reason: z.string().nullable().meta({ description: "The provider's reason (fraudulent, product_not_received, …)." }),
  dueBy: isoTime.nullable().meta({ description: 'By when evidence must reach the provider.' }),
  amountCents: int,
});

export const orderSchema = named('Order', {
  orderNo: orderNoSchema,
  sku: skuSchema,
  quantity: int,
  totalCents: int,
  status: orderStatusSchema,
  cancelReason: z.enum(CANCEL_REASONS).optional(),
  paymentDeadline: isoTime.meta({
    description:
      'When the order became AWAITING_PAYMENT + PAYMENT_WINDOW (while PENDING: createdAt + PAYMENT_WINDOW, the earliest it can be). ' +
      'A payment recorded after it is refunded; after it, an unpaid order is cancelled.',
  }),
  createdAt: isoTime,
  paidAt: isoTime.optional(),
  paymentProvider: z
    .string()
    .optional()
    .meta({
      examples: ['stripe'],
      description:
        'The provider with an API the order is paid through (`stripe`, with PAYMENT_PROVIDER=stripe); absent: the ' +
        'generic webhook.',
    }),
  // Added from MySQL by this lookup, never from the workflow (whose history keeps no client secret).
  paymentIntent: z
    .object({
      id: z.string().meta({ examples: ['pi_3PgafyB7WZ01zgkW'] }),
      clientSecret: z.string().meta({
        description:
          "Stripe.js confirms the payment with it (and the publishable key); shown to the order's shopper only.",
      }),
    })
    .optional()
    .meta({
      description:
        "The order's Stripe PaymentIntent, while the order is AWAITING_PAYMENT and once it is made (a moment after the order " +
        'is persisted; until then the read is not cached, so the next poll shows it).',
    }),
  refundedCents: int.optional().meta({
    description:
      "Refunded at the payment provider after the order was paid, without this service asking (a refund in Stripe's " +
      'Dashboard): all of it makes the order REFUNDED.',
  }),
  dispute: disputeSchema.optional().meta({ description: "The newest dispute of the order's payment." }),
});

export type OrderView = z.infer<typeof orderSchema>;

/** GET /api/orders/{orderNo}: the order, and where the answer came from. */
export const orderReadSchema = orderSchema
  .extend({
    source: z.enum(['database', 'stores', 'workflow']).meta({
      description:
        "`database`: the order's MySQL row, which decides how it ends. `stores`: no row yet, its pending start in Redis " +
        "(PENDING). `workflow`: MySQL out of reach, the order's workflow answered (it may lag its row by a step).",
    }),
  })
  .meta({ id: 'OrderRead' });

export type OrderSource = z.infer<typeof orderReadSchema>['source'];

export interface FoundOrder {
  view: OrderView;
  userId: string;
  source: OrderSource;
  /** Read from its pending start (no row yet): its recorded input (a cancel starts it first). */
  promised?: OrderInput;
  /** Why a FAILED order failed (not shown by GET; the waiting checkout's FAILED answer gives it). */
  failureReason?: string;
}

/** How long the list of active sales (for lookups of an order by its number alone) is reused. */
const SALES_REFRESH_MS = 1_000;

export interface OrderLookupDeps {
  /** The stores as they are: their reads go through `mysql`. */
  stores: { orders: OrderStore; payments: PaymentStore };
  /** The API's MySQL breaker, or a guard that never opens (the tools'). */
  mysql: DependencyGuard;
  /** Where orders pending their start are found by their number (the reservation's recorded input); null: nowhere. */
  inventory: RedisInventory | null;
  /** The share of a read's deadline the pending start (Redis) may take before the row is read (0: all of it). */
  promiseReadMs: number;
  /** Opens an intent's client secret, kept sealed in MySQL (the payload codec's keys). */
  secrets: TextSealer;
  workflows?: { queryStatus: (orderNo: string, deadline: Deadline) => Promise<OrderState> };
}

export class OrderLookup {
  private sales: { list: ActiveSale[]; readAt: number } = { list: [], readAt: 0 };

  constructor(private readonly deps: OrderLookupDeps) {}

  /** PENDING while unclaimed (sparing MySQL a burst's polls), else its row, else its pending start; no MySQL: below. */
  async find(orderNo: string, deadline = Deadline.in(10_000)): Promise<FoundOrder | null> {
    const unclaimed = await this.unclaimedPromise(orderNo, deadline.capped(this.deps.promiseReadMs || undefined));
    if (unclaimed) return unclaimed;
    try {
      return (await this.fromDatabase(orderNo, deadline)) ?? (await this.fromPromise(orderNo, deadline));
    } catch (err) {
      // MySQL away: its workflow in the same words (it cannot close meanwhile), in half the time left; else its start.
      if (!(err instanceof DependencyUnavailableError && err.dependency === 'mysql')) throw err;
      const asked = this.deps.workflows?.queryStatus(orderNo, deadline.capped(deadline.remainingMs() / 2));
      const state = await asked?.catch(() => null);
      if (state) return { view: viewOfState(state), userId: state.userId, source: 'workflow' };
      return (await this.fromPromise(orderNo, deadline).catch(() => null)) ?? Promise.reject(err);
    }
  }

  /** The intent the order opened and can still be paid through, its client secret from MySQL (never Temporal's). */
  private async payableIntent(orderNo: string, deadline: Deadline): Promise<PaymentIntentHandle | null> {
    const intents = await this.deps.mysql.call(deadline, () => this.deps.stores.payments.paymentIntentsOf(orderNo));
    const payable = intents.filter((intent) => intent.clientSecret && intent.status !== 'canceled').at(-1);
    if (!payable?.clientSecret) return null;
    return {
      id: payable.intentId,
      clientSecret: this.deps.secrets.open(payable.clientSecret, clientSecretContext(payable.intentId)),
    };
  }

  /** The pending start while its reservation is unclaimed (then surely PENDING); else, or unread, null. */
  private async unclaimedPromise(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const inventory = this.deps.inventory;
    if (!inventory) return null;
    // Bounded as a whole (lookup and record): a slow Redis must not eat the row's time.
    return boundBy(deadline, async () => {
      const found = await this.fromPromise(orderNo, deadline);
      if (!found) return null;
      const reservation = await inventory.getReservation(found.view.sku, orderNo);
      return reservation?.state === 'RESERVED' ? found : null;
    }).catch(() => null);
  }

  /** The order as its pending start says (PENDING: no row written yet). */
  private async fromPromise(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const input = await this.findPromise(orderNo, deadline);
    if (!input) return null;
    return { view: viewOfState(pendingOrderState(input)), userId: input.userId, source: 'stores', promised: input };
  }

  /** An order's recorded input by number alone: numbers carry no SKU, so each sale active since then is asked. */
  private async findPromise(orderNo: string, deadline: Deadline): Promise<OrderInput | null> {
    const inventory = this.deps.inventory;
    if (!inventory) return null;
    try {
      return await boundBy(deadline, async () => {
        const fresh = Date.now() - this.sales.readAt <= SALES_REFRESH_MS;
        const found = fresh ? await inventory.findOrderInput(orderNo, this.sales.list) : null;
        if (found) return found;
        // Not among the sales as read a moment ago: the sale may have become active since.
        const since = activeSince(orderNo);
        if (since === null) return null;
        this.sales = { list: await inventory.activeSales(since), readAt: Date.now() };
        return inventory.findOrderInput(orderNo, this.sales.list);
      });
    } catch (err) {
      // Redis out of time or failing: "cannot tell now" (503 and retry), never a bug's 500.
      const reason = err instanceof DeadlineExceededError ? 'deadline' : 'failed';
      throw new DependencyUnavailableError('redis', reason, 1, err);
    }
  }

  /** The order as its row says, with the intent a provider order can be paid through while it awaits payment. */
  async fromDatabase(orderNo: string, deadline: Deadline): Promise<FoundOrder | null> {
    const row = await this.deps.mysql.call(deadline, () => this.deps.stores.orders.getOrder(orderNo));
    if (!row) return null;
    const payable = row.status === 'AWAITING_PAYMENT' && row.paymentProvider !== null;
    // Not read in time: the view goes without its intent, which the shopper's next read shows (never cached without).
    const intent = payable ? await this.payableIntent(orderNo, deadline).catch(() => null) : null;
    return {
      userId: row.userId,
      source: 'database',
      ...(row.failureReason ? { failureReason: row.failureReason } : {}),
      view: { ...viewOfRow(row), ...(intent ? { paymentIntent: intent } : {}) },
    };
  }
}

/** The order as its MySQL row shows it (GET /api/orders/:orderNo from the row, and the shopper's list). */
export function viewOfRow(row: OrderRow): OrderView {
  return {
    ...viewOfState(row),
    ...(row.refundedCents > 0 ? { refundedCents: row.refundedCents } : {}),
    ...(row.dispute ? { dispute: { ...row.dispute, dueBy: row.dispute.dueBy?.toISOString() ?? null } } : {}),
  };
}

/** A workflow's state, or a row (its dates made strings), as the order shows it. */
export function viewOfState(state: OrderState | OrderRow): OrderView {
  const iso = (date: string | Date) => (typeof date === 'string' ? date : date.toISOString());
  return {
    orderNo: state.orderNo,
    sku: state.sku,
    quantity: state.quantity,
    totalCents: state.totalCents,
    status: state.status,
    ...(state.cancelReason ? { cancelReason: state.cancelReason } : {}),
    paymentDeadline: iso(state.paymentDeadline),
    createdAt: iso(state.createdAt),
    ...(state.paidAt ? { paidAt: iso(state.paidAt) } : {}),
    ...(state.paymentProvider ? { paymentProvider: state.paymentProvider } : {}),
  };
}
