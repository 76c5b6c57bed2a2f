import { Client, Connection } from '@temporalio/client';
import type { AppConfig } from '../config/index.js';
import { temporalConnectionSettings } from './temporal-connection.js';

/** A Temporal client for the API and tools (starts workflows, sends signals, runs queries). */
export async function createTemporalClient(config: Pick<AppConfig, 'temporal'>): Promise<Client> {
  const connection = await Connection.connect({ ...temporalConnectionSettings(config), connectTimeout: '5s' });
  // Closed workflows reject queries: the API reads finished orders from MySQL instead of making a
  // worker replay their history.
  return new Client({ connection, namespace: config.temporal.namespace, workflow: { queryRejectCondition: 'NOT_OPEN' } });
}
