/** The namespace set-up the worker needs on the Temporal server. */
import type { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { ORDER_SEARCH_ATTRIBUTES } from '../model/order-workflow.js';

/** Registers the order search attributes on a server lacking them (an external cluster, the time-skipping server). */
export async function ensureSearchAttributes(
  connection: Pick<Connection, 'operatorService'>,
  namespace: string,
): Promise<void> {
  const KEYWORD = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  try {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(ORDER_SEARCH_ATTRIBUTES.map(({ name }) => [name, KEYWORD])),
    });
  } catch (err) {
    // ALREADY_EXISTS (gRPC 6) means another process registered them first: that is the goal.
    if ((err as { code?: number }).code !== 6) throw err;
  }
}
