/** After a commit, the RefundWorkflow of each payment owed back (API providers); a failed start: the reconciler's. */
import type { Logger } from '../infra/logger.js';
import { Deadline } from '../infra/dependency-guard.js';
import type { OwedRefund } from '../db/orders.js';
import type { RefundStarts } from '../order/close.js';
import type { OrderWorkflowClient } from '../order/workflow-client.js';

export class RefundStarter implements RefundStarts {
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
      this.deps.orders
        .startRefund(refund.eventId, Deadline.in(10_000))
        .catch((err: unknown) =>
          this.deps.logger?.warn(
            { eventId: refund.eventId, err: err instanceof Error ? err.message : String(err) },
            "a refund's workflow did not start; the reconciler starts it",
          ),
        );
    }
  }
}
