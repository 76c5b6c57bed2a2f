/** The service's variables with every registered provider's, and a provider's settings: for tests, docs and tools. */
import { CONFIG_DEFAULTS, CONFIG_VARIABLES, OPTIONAL_CONFIG_VARIABLES, type AppConfig } from '../src/config/index.js';
import type { ProviderDefinition } from '../src/payments/providers/definition.js';
import { PAYMENT_PROVIDERS, paymentProviders } from '../src/payments/providers/registry.js';

const PROVIDER_VARIABLES = PAYMENT_PROVIDERS.flatMap((provider) => Object.entries(provider.variables));

/** Every environment variable the service reads: the core ones and every registered provider's (docs/operations.md). */
export const SERVICE_CONFIG_VARIABLES: readonly string[] = [
  ...CONFIG_VARIABLES,
  ...PROVIDER_VARIABLES.map(([name]) => name),
];
/** Those that may stay unset (a provider's: those without a default). */
export const SERVICE_OPTIONAL_CONFIG_VARIABLES: readonly string[] = [
  ...OPTIONAL_CONFIG_VARIABLES,
  ...PROVIDER_VARIABLES.filter(([, variable]) => variable.default === undefined).map(([name]) => name),
];
/** The defaults of the variables that have one. */
export const SERVICE_CONFIG_DEFAULTS: Readonly<Record<string, string>> = {
  ...CONFIG_DEFAULTS,
  ...Object.fromEntries(
    PROVIDER_VARIABLES.flatMap(([name, variable]) =>
      variable.default === undefined ? [] : [[name, variable.default]],
    ),
  ),
};

/** One registered provider's settings (`stripe`'s for a test's client); null where it is not configured. */
export function settingsOf<Settings>(
  config: Pick<AppConfig, 'payments' | 'nodeEnv' | 'webhookSecret'>,
  provider: ProviderDefinition<Settings>,
): Settings | null {
  const entry = paymentProviders(config).all.find((candidate) => candidate.definition === provider);
  return (entry?.settings ?? null) as Settings | null;
}
