/** A temporal.toml profile under TEMPORAL_* variables (which win), as the SDK reads it; old mTLS names still work. */
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
  // A key or client certificate implies TLS, whatever TEMPORAL_TLS says (compose: false): else the key goes in clear.
  if (profile.tls?.disabled && (profile.apiKey !== undefined || profile.tls.clientCert !== undefined))
    profile.tls = { ...profile.tls, disabled: false };
  return {
    ...profile,
    address: profile.address ?? defaults.address,
    namespace: profile.namespace ?? defaults.namespace,
  };
}
