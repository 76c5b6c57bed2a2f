/**
 * Starts the RefundWorkflow of each payment a commit left owed back, after that commit and without holding its caller
 * (docs/fault-tolerance.md, "Refunds"). Only providers with an API refund through one; the generic webhook's refunds
 * are an operator's. A start that fails is left to the reconciler, which starts one for any owed payment with none
 * running.
 */
import type { Logger } from '../infra/logger.js';
import { Deadline } from '../infra/dependency-guard.js';
import type { OwedRefund } from '../db/orders.js';
import type { RefundStarts } from '../order/close.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';

export class RefundStarter implements RefundStarts {
  private readonly starting = new Set<Promise<unknown>>();

  constructor(
    private readonly deps: {
      orders: Pick<OrderWorkflowClient, 'startRefund'>;
      /** The providers this process refunds through (their APIs configured). */
      providers: readonly string[];
      logger?: Pick<Logger, 'warn'>;
    },
  ) {}

  start(owed: readonly OwedRefund[]): void {
    for (const refund of owed) {
      if (!this.deps.providers.includes(refund.provider)) continue;
      const starting = this.deps.orders.startRefund(refund.eventId, Deadline.in(10_000));
      this.starting.add(starting);
      starting
        .catch((err: unknown) =>
          this.deps.logger?.warn(
            { eventId: refund.eventId, err: err instanceof Error ? err.message : String(err) },
            "a refund's workflow did not start; the reconciler starts it",
          ),
        )
        .finally(() => this.starting.delete(starting));
    }
  }

  /** Waits for the starts under way (each bounded by its deadline). */
  async stop(): Promise<void> {
    await Promise.allSettled([...this.starting]);
  }
}
