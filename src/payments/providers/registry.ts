/**
 * The payment providers, one line each: adding one is its folder (./<name>/definition.ts) and its line here. The
 * config, webhook routes, worker, OpenAPI document and name checks read this list; workflow code never imports it.
 */
import { CONFIG_DEFAULTS, CONFIG_VARIABLES, OPTIONAL_CONFIG_VARIABLES, type AppConfig } from '../../config/index.js';
import {
  configuredProviders,
  providerDefaults,
  providerNames,
  providerSettings,
  providerVariables,
  providerVariablesWithoutDefault,
  type ConfiguredProviders,
  type ProviderDefinition,
  type ProviderRegistry,
} from './definition.js';
import { generic } from './generic/definition.js';
import { stripe } from './stripe/definition.js';

export const PAYMENT_PROVIDERS: ProviderRegistry = [
  generic, // this service's own signed webhook
  stripe,
];

/** The registered providers' names: what a payment's `provider` may say. */
export const PAYMENT_PROVIDER_NAMES = providerNames(PAYMENT_PROVIDERS) as [string, ...string[]];
/** Those with an API: what an order's `paymentProvider` may say (the others need nothing made per order). */
export const PROVIDER_WITH_API_NAMES = providerNames(PAYMENT_PROVIDERS.filter((provider) => provider.api)) as [
  string,
  ...string[],
];

/** Every environment variable the service reads: the core ones and every registered provider's (docs/operations.md). */
export const SERVICE_CONFIG_VARIABLES: readonly string[] = [
  ...CONFIG_VARIABLES,
  ...providerVariables(PAYMENT_PROVIDERS),
];
export const SERVICE_OPTIONAL_CONFIG_VARIABLES: readonly string[] = [
  ...OPTIONAL_CONFIG_VARIABLES,
  ...providerVariablesWithoutDefault(PAYMENT_PROVIDERS),
];
export const SERVICE_CONFIG_DEFAULTS: Readonly<Record<string, string>> = {
  ...CONFIG_DEFAULTS,
  ...providerDefaults(PAYMENT_PROVIDERS),
};

type ProvidersConfig = Pick<AppConfig, 'payments' | 'nodeEnv' | 'webhookSecret'>;

/** The registered providers as `config` configures them (throws a ConfigError naming each problem). */
export function paymentProviders(config: ProvidersConfig, registry = PAYMENT_PROVIDERS): ConfiguredProviders {
  return configuredProviders(config, registry);
}

/** One registered provider's settings (`stripe`'s for a test's client); null where it is not configured. */
export function settingsOf<Settings>(config: ProvidersConfig, provider: ProviderDefinition<Settings>): Settings | null {
  return providerSettings(config, provider, PAYMENT_PROVIDERS);
}
