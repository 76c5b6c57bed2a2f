import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { AppConfig } from '../config/index.js';

/** A Temporal client for the API (starts workflows, sends signals, runs queries). */
export async function createTemporalClient(config: Pick<AppConfig, 'temporal'>): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address, connectTimeout: '5s' });
  return new Client({ connection, namespace: config.temporal.namespace });
}

/** The worker's native (Rust core) connection. */
export function createWorkerConnection(config: Pick<AppConfig, 'temporal'>): Promise<NativeConnection> {
  return NativeConnection.connect({ address: config.temporal.address });
}
