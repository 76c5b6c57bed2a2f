/** Starts or wakes an endpoint's delivery workflow (EndpointDeliveryWorkflow): one per endpoint, however often. */
import { ENDPOINT_DELIVERY_WORKFLOW_TYPE } from '../model/workflow-types.js';
import type { Client } from '@temporalio/client';
import type { AppConfig } from '../config/index.js';
import {
  endpointDeliveryWorkflowId,
  wakeDeliverySignal,
  type EndpointDeliveryInput,
} from '../model/delivery-workflow.js';

export class EndpointDeliveryClient {
  constructor(
    private readonly temporal: Client,
    private readonly config: Pick<AppConfig, 'temporal' | 'webhookDelivery'>,
  ) {}

  private workflow(endpointId: string) {
    const args: [EndpointDeliveryInput] = [{ endpointId, pollIntervalMs: this.config.webhookDelivery.pollIntervalMs }];
    return { workflowId: endpointDeliveryWorkflowId(endpointId), taskQueue: this.config.temporal.taskQueue, args };
  }

  /** Told to look now, or started, within `withinMs` (else the reconciler starts it within RECONCILE_INTERVAL). */
  async wake(endpointId: string, withinMs: number): Promise<void> {
    await this.temporal.connection.withDeadline(Date.now() + withinMs, () =>
      this.temporal.workflow.signalWithStart(ENDPOINT_DELIVERY_WORKFLOW_TYPE, {
        ...this.workflow(endpointId),
        signal: wakeDeliverySignal,
        signalArgs: [],
      }),
    );
  }

  /** Started unless it runs (the reconciler's check that every enabled endpoint has its delivery); no history added. */
  async ensureRunning(endpointId: string): Promise<void> {
    await this.temporal.workflow.start(ENDPOINT_DELIVERY_WORKFLOW_TYPE, {
      ...this.workflow(endpointId),
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
  }
}
