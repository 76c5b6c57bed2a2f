/**
 * What a payment provider declares in one object (its folder's definition.ts), and what is read from a list of them
 * (./registry.ts). Nothing else names a provider. Not bundled: workflows see a provider only as an order's name.
 */
import type { z } from 'zod';
import { ConfigError, type AppConfig, type SettingDescription } from '../../config/index.js';
import type { RecordedPaymentEvent } from '../../db/payments.js';
import type { PaymentStore } from '../../db/payments.js';
import type { RefundStore } from '../../db/refunds.js';
import type { DependencyGuard } from '../../infra/dependency-guard.js';
import type { Logger } from '../../infra/logger.js';
import type { RefundReason, StripeWebhookOutcome, WebhookOutcome } from '../../model/order-workflow.js';
import type { CatchUpIntake, PaymentProviderApi, ProviderEvent } from '../provider.js';

/**
 * One environment variable of a provider: parsed as set (or as its default); a refusal names the variable. Its meaning
 * is declared beside it (docs/reference/settings.md is generated from it).
 */
export interface ProviderVariable extends Partial<SettingDescription> {
  schema: z.ZodType;
  /** As an operator would write it; absent: the variable may stay unset. */
  default?: string;
  /**
   * A value its schema accepts, for a variable that configures the provider: the reference docs set every example to
   * document a deployment with every provider configured (scripts/reference-docs.ts). Never a real secret.
   */
  example?: string;
}

/** What a provider's settings are read with besides its own variables. */
export interface SettingsContext {
  /** PAYMENT_PROVIDER names it: new orders are paid through it. */
  selected: boolean;
  /** NODE_ENV=production: development defaults are refused. */
  production: boolean;
  /** The core settings a provider may share (the generic webhook's WEBHOOK_SECRET). */
  config: Pick<AppConfig, 'webhookSecret'>;
}

/** A provider's webhook signature: its header, and the OpenAPI security scheme that documents it. */
export interface WebhookSignature {
  /** The security scheme's id in the OpenAPI document (`stripeSignature`). */
  scheme: string;
  header: string;
  description: string;
}

/** A provider's webhook route, as the app mounts it and the OpenAPI document shows it. */
export interface WebhookRoute {
  path: string;
  operationId: string;
  summary: string;
  description: string;
  signature: WebhookSignature;
  /** The signature header, declared for the document (the intake's verify reads it itself: INVALID_SIGNATURE). */
  headers: z.ZodObject;
  body: z.ZodType;
  /** The answer's body, 200 and 202. */
  answer: z.ZodType;
  answers: { 200: string; 202: string };
  /** 503's description: the event was not recorded. */
  unavailable: string;
}

/** The record-first path of payments: the webhook's (record, deliver), or the catch-up's (record; the API delivers). */
export interface PaymentIntake {
  handle(event: RecordedPaymentEvent): Promise<{ outcome: WebhookOutcome; refundReason?: RefundReason }>;
}

/** What a provider's intake is built over. */
export interface IntakeDeps {
  payments: PaymentIntake;
  stores: { payments: PaymentStore; refunds: RefundStore };
  /** The API's MySQL guard (the records go through it whatever its breaker says), or one that never opens. */
  mysql: DependencyGuard;
  mysqlMs: number;
  /** What the evidence of a payment says brought it: `webhook`, or `catch-up` (default webhook). */
  source?: string;
  /** Told of an order whose status the provider changed (a dispute, a refund), so status reads see it at once. */
  changed?: (orderNo: string) => void;
  /** Told of each refund or dispute recorded against a paid order. */
  takenBack?: (kind: 'REFUND' | 'DISPUTE') => void;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

/** A webhook's answer: the outcome, and whatever else the provider's answer schema declares. */
export interface IntakeAnswer {
  outcome: StripeWebhookOutcome;
  refundReason?: RefundReason;
  type?: string;
}

/** What a provider's webhook route calls: the signature first, then the event. */
export interface WebhookIntake {
  /** What the provider signed over these bytes (else a Refusal: INVALID_SIGNATURE). */
  verify(raw: string, signature: string | undefined): unknown;
  /** The verified event taken in; `body` validates the route's declared body once the signature holds. */
  handle(verified: unknown, body: () => unknown): Promise<IntakeAnswer>;
  /** One event the catch-up found undelivered, taken in as the webhook would (providers with a catch-up). */
  take?(event: ProviderEvent): Promise<{ outcome: string }>;
}

export interface ProviderDefinition<Settings = unknown> {
  /** What PAYMENT_PROVIDER and the payments' `provider` column say (at most 32 characters). */
  readonly name: string;
  /** Its environment variables (named after it), each with its default or none. */
  readonly variables: Readonly<Record<string, ProviderVariable>>;
  /** From its parsed variables; null: not configured (keys unset). Throws a ConfigError naming what does not fit. */
  settings(values: Readonly<Record<string, unknown>>, context: SettingsContext): Settings | null;
  readonly webhook: WebhookRoute;
  intake(settings: Settings, deps: IntakeDeps): WebhookIntake;
  /** Its API (src/payments/provider.ts): each order's payment is opened there. Absent: it needs nothing per order. */
  api?(settings: Settings): PaymentProviderApi;
  /** Its API's requests per second across all workers (the provider task queue's limit). */
  requestsPerSecond?(settings: Settings): number;
  /** How long an intent may stay `processing` past its deadline before an error is logged. */
  processingAlertMs?(settings: Settings): number;
  /** How often the catch-up asks it for the events it did not deliver (needs `api` and the intake's `take`). */
  catchUpIntervalMs?(settings: Settings): number;
}

/** A list of providers: a registry (./registry.ts), or a test's. */
export type ProviderRegistry = readonly ProviderDefinition[];

/** Checks a definition's types; the registry lists what it returns. */
export function defineProvider<Settings>(definition: ProviderDefinition<Settings>): ProviderDefinition<Settings> {
  return definition;
}

/** A provider configured here: its definition and settings. */
export interface ConfiguredProvider {
  definition: ProviderDefinition;
  settings: unknown;
}

/** The providers of a configuration: the one new orders are paid through, and every one configured here. */
export interface ConfiguredProviders {
  /** PAYMENT_PROVIDER's; its settings are there (a provider named but not configured is refused). */
  selected: ConfiguredProvider;
  /** Every registered provider with its settings, null where it is not configured (its webhook is not mounted). */
  all: readonly { definition: ProviderDefinition; settings: unknown }[];
  configured: readonly ConfiguredProvider[];
}

export function providerNames(registry: ProviderRegistry): string[] {
  return registry.map((provider) => provider.name);
}

/** Every environment variable the registry's providers read, in registry order. */
export function providerVariables(registry: ProviderRegistry): string[] {
  return registry.flatMap((provider) => Object.keys(provider.variables));
}

/** The variables without a default. */
export function providerVariablesWithoutDefault(registry: ProviderRegistry): string[] {
  return registry.flatMap((provider) =>
    Object.entries(provider.variables).flatMap(([name, variable]) => (variable.default === undefined ? [name] : [])),
  );
}

/** The defaults of the variables that have one. */
export function providerDefaults(registry: ProviderRegistry): Record<string, string> {
  return Object.fromEntries(
    registry.flatMap((provider) =>
      Object.entries(provider.variables).flatMap(([name, variable]) =>
        variable.default === undefined ? [] : [[name, variable.default] as const],
      ),
    ),
  );
}

const configuredOf = new WeakMap<object, WeakMap<ProviderRegistry, ConfiguredProviders>>();

/** The registry's providers as `config` configures them, read once per both; a ConfigError names every problem. */
export function configuredProviders(
  config: Pick<AppConfig, 'payments' | 'nodeEnv' | 'webhookSecret'>,
  registry: ProviderRegistry,
): ConfiguredProviders {
  const byRegistry = configuredOf.get(config) ?? new WeakMap<ProviderRegistry, ConfiguredProviders>();
  configuredOf.set(config, byRegistry);
  const known = byRegistry.get(registry);
  if (known) return known;
  const { provider, environment } = config.payments;
  const problems: string[] = [];
  if (!registry.some((definition) => definition.name === provider))
    problems.push(`PAYMENT_PROVIDER: must be one of ${providerNames(registry).join(', ')} (is ${provider})`);
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
  const configured = all.filter((entry) => entry.settings !== null);
  const providers = { selected: selected!, all, configured };
  byRegistry.set(registry, providers);
  return providers;
}

/** One provider's settings as `config` configures it; null where it is not configured. */
export function providerSettings<Settings>(
  config: Pick<AppConfig, 'payments' | 'nodeEnv' | 'webhookSecret'>,
  definition: ProviderDefinition<Settings>,
  registry: ProviderRegistry,
): Settings | null {
  const entry = configuredProviders(config, registry).all.find((candidate) => candidate.definition === definition);
  return (entry?.settings ?? null) as Settings | null;
}

const apisOf = new WeakMap<ConfiguredProviders, Record<string, PaymentProviderApi>>();

/** The configured providers' APIs by name: one client per provider and configuration, shared by every activity. */
export function providerApis(providers: ConfiguredProviders): Record<string, PaymentProviderApi> {
  const known = apisOf.get(providers);
  if (known) return known;
  const apis = Object.fromEntries(
    providers.configured.flatMap(({ definition, settings }) =>
      definition.api ? [[definition.name, definition.api(settings)] as const] : [],
    ),
  );
  apisOf.set(providers, apis);
  return apis;
}

/** The configured providers with an API: a payment owed back through one is refunded by its RefundWorkflow. */
export function refundingProviders(providers: ConfiguredProviders): string[] {
  return providers.configured.filter(({ definition }) => definition.api).map(({ definition }) => definition.name);
}

/** The configured provider whose undelivered events the catch-up reads (one with a catch-up and an API), if any. */
export function catchUpProvider(providers: ConfiguredProviders): ConfiguredProvider | undefined {
  return providers.configured.find(({ definition }) => definition.catchUpIntervalMs && definition.api);
}

/** The catch-up's intake of a provider: its webhook intake, which must take an event in on its own. */
export function catchUpIntakeOf(intake: WebhookIntake): CatchUpIntake {
  const { take } = intake;
  if (!take) throw new Error('a provider with a catch-up needs an intake that takes events (WebhookIntake.take)');
  return { take: (event) => take.call(intake, event) };
}
