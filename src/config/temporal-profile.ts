/**
 * Temporal's connection the SDK's way (@temporalio/envconfig): a profile of a `temporal.toml` file (TEMPORAL_PROFILE,
 * TEMPORAL_CONFIG_FILE, the one Temporal's CLI writes) under Temporal's own TEMPORAL_* variables, which win. The
 * project's earlier names for the mTLS pair (TEMPORAL_TLS_CERT_PATH, TEMPORAL_TLS_KEY_PATH) keep working.
 */
import { loadClientConfigProfile, type ClientConfigProfile } from '@temporalio/envconfig';

/** The project's name → the SDK's, for the variables it named before the SDK read them. */
const PROJECT_NAMES = {
  TEMPORAL_TLS_CERT_PATH: 'TEMPORAL_TLS_CLIENT_CERT_PATH',
  TEMPORAL_TLS_KEY_PATH: 'TEMPORAL_TLS_CLIENT_KEY_PATH',
} as const;

/** The profile `env` selects (file and variables; certificates stay paths until a connection reads them). */
export function temporalProfileOf(
  env: Record<string, string>,
  defaults: { address: string; namespace: string },
): ClientConfigProfile & { address: string; namespace: string } {
  const sdkEnv = { ...env };
  for (const [project, sdk] of Object.entries(PROJECT_NAMES)) {
    const value = env[project];
    if (value !== undefined) sdkEnv[sdk] ??= value;
  }
  const profile = loadClientConfigProfile({ overrideEnvVars: sdkEnv });
  // An API key or a client certificate implies TLS, whatever TEMPORAL_TLS says (compose sets it false by default):
  // the SDK would send the key in clear.
  if (profile.tls?.disabled && (profile.apiKey !== undefined || profile.tls.clientCert !== undefined))
    profile.tls = { ...profile.tls, disabled: false };
  return {
    ...profile,
    address: profile.address ?? defaults.address,
    namespace: profile.namespace ?? defaults.namespace,
  };
}
