/** How every process reaches Temporal (for Temporal Cloud: TLS with an API key or mTLS), in one place so all alike. */
import { Client, Connection } from '@temporalio/client';
import { toClientOptions } from '@temporalio/envconfig';
import type { AppConfig } from '../config/index.js';
import { temporalDataConverter } from './data-converter.js';
import { temporalClientInterceptors } from './tracing.js';

/** The gRPC status codes callers react to (https://grpc.io/docs/guides/status-codes/). */
const GRPC_STATUS = { DEADLINE_EXCEEDED: 4, RESOURCE_EXHAUSTED: 8 } as const;

/** Whether `status` is anywhere in the error's cause chain: as its code, or named in a wrapping error's message. */
export function hasGrpcStatus(err: unknown, status: keyof typeof GRPC_STATUS): boolean {
  const named = new RegExp(`\\b${status}\\b`);
  for (let current: unknown = err, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if ((current as { code?: unknown }).code === GRPC_STATUS[status] || named.test(current.message)) return true;
  }
  return false;
}

/** Connection options shared by `Connection.connect` (client) and `NativeConnection.connect` (worker). */
export function temporalConnectionSettings(config: Pick<AppConfig, 'temporal'>) {
  // The SDK's own reading of the profile: TLS on with an API key or a client certificate, files read now.
  const { tls, apiKey, metadata } = toClientOptions(config.temporal).connectionOptions;
  return {
    address: config.temporal.address,
    ...(tls != null ? { tls } : {}),
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(metadata !== undefined ? { metadata } : {}),
  };
}

/** A Temporal client for the API and tools. */
export async function createTemporalClient(config: Pick<AppConfig, 'temporal' | 'payloadCodec'>): Promise<Client> {
  const connection = await Connection.connect({ ...temporalConnectionSettings(config), connectTimeout: '5s' });
  // A closed run answers its status query by a replay on a worker: asked only while MySQL is away (OrderLookup).
  return new Client({
    connection,
    namespace: config.temporal.namespace,
    interceptors: temporalClientInterceptors(),
    dataConverter: temporalDataConverter(config),
  });
}
