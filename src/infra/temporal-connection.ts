/**
 * How every process of the app reaches Temporal: the frontend's address, and for a managed Temporal
 * (Temporal Cloud) TLS with an API key or an mTLS client certificate. One place, so that the API's
 * client, the worker's native connection (src/workers/worker-connection.ts) and the worker's client
 * connect alike.
 */
import { readFileSync } from 'node:fs';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import type { AppConfig } from '../config/index.js';
import { temporalClientInterceptors } from './tracing.js';

export interface TemporalConnectionSettings {
  address: string;
  tls?: TLSConfig | true;
  apiKey?: string;
}

/** Connection options shared by `Connection.connect` (client) and `NativeConnection.connect` (worker). */
export function temporalConnectionSettings(config: Pick<AppConfig, 'temporal'>): TemporalConnectionSettings {
  const { address, tls, apiKey, clientCertPath, clientKeyPath } = config.temporal;
  const clientCertPair =
    clientCertPath && clientKeyPath
      ? { crt: readFileSync(clientCertPath), key: readFileSync(clientKeyPath) }
      : undefined;
  return {
    address,
    ...(clientCertPair ? { tls: { clientCertPair } } : tls ? { tls: true as const } : {}),
    ...(apiKey ? { apiKey } : {}),
  };
}

/** A Temporal client for the API and tools (starts workflows, sends Updates, runs queries). */
export async function createTemporalClient(config: Pick<AppConfig, 'temporal'>): Promise<Client> {
  const connection = await Connection.connect({ ...temporalConnectionSettings(config), connectTimeout: '5s' });
  // Closed workflows reject queries: the API reads finished orders from MySQL instead of making a
  // worker replay their history.
  // With tracing on, every start, signal, query and Update carries the request's trace to the worker.
  return new Client({
    connection,
    namespace: config.temporal.namespace,
    workflow: { queryRejectCondition: 'NOT_OPEN' },
    interceptors: temporalClientInterceptors(),
  });
}
