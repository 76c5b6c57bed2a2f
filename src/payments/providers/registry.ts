/** The payment providers, one line each (and a folder): config, routes, worker and docs read it; workflows never do. */
import { ConfigError, type AppConfig } from '../../config/index.js';
import type { ConfiguredProviders, ProviderRegistry } from './definition.js';
import { generic } from './generic/definition.js';
import { stripe } from './stripe/definition.js';

export const PAYMENT_PROVIDERS: ProviderRegistry = [
  generic, // this service's own signed webhook
  stripe,
];

const configuredOf = new WeakMap<object, WeakMap<ProviderRegistry, ConfiguredProviders>>();

/** The registry's providers as `config` configures them, read once per both; a ConfigError names every problem. */
export function paymentProviders(
  config: Pick<AppConfig, 'payments' | 'nodeEnv' | 'webhookSecret'>,
  registry = PAYMENT_PROVIDERS,
): ConfiguredProviders {
  const byRegistry = configuredOf.get(config) ?? new WeakMap<ProviderRegistry, ConfiguredProviders>();
  configuredOf.set(config, byRegistry);
  const known = byRegistry.get(registry);
  if (known) return known;
  const { provider, environment } = config.payments;
  const problems: string[] = [];
  if (!registry.some((definition) => definition.name === provider))
    problems.push(`PAYMENT_PROVIDER: must be one of ${registry.map(({ name }) => name).join(', ')} (is ${provider})`);
  const all = registry.map((definition) => {
    const values: Record<string, unknown> = {};
    for (const [name, variable] of Object.entries(definition.variables)) {
      const raw = environment[name] ?? variable.default;
      if (raw === undefined) continue;
      const parsed = variable.schema.safeParse(raw);
      if (parsed.success) values[name] = parsed.data;
      else problems.push(...parsed.error.issues.map((issue) => `${name}: ${issue.message}`));
    }
    if (problems.length > 0) return { definition, settings: null };
    const context = { selected: definition.name === provider, production: config.nodeEnv === 'production', config };
    try {
      return { definition, settings: definition.settings(values, context) };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err.message);
      return { definition, settings: null };
    }
  });
  const selected = all.find((entry) => entry.definition.name === provider);
  if (problems.length === 0 && selected && selected.settings === null)
    problems.push(`PAYMENT_PROVIDER=${provider}: ${provider} is not configured (set its variables)`);
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  const providers = { selected: selected!, all, configured: all.filter((entry) => entry.settings !== null) };
  byRegistry.set(registry, providers);
  return providers;
}
