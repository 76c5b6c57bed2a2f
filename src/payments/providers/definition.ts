/** What a provider declares (its definition.ts, listed in ./registry.ts); workflows see only an order's name. */
import type { z } from 'zod';
import type { AppConfig, SettingDescription } from '../../config/index.js';
import type { PaymentStore } from '../../db/payments.js';
import type { RefundStore } from '../../db/refunds.js';
import type { DependencyGuard } from '../../infra/dependency-guard.js';
import type { Logger } from '../../infra/logger.js';
import type { RefundReason, StripeWebhookOutcome } from '../../model/order-workflow.js';
import type { CatchUpIntake, PaymentProviderApi, ProviderEvent } from '../provider.js';
import type { PaymentReceiver } from '../receiver.js';

/** One environment variable of a provider, parsed as set or as its default; its meaning feeds docs/reference. */
export interface ProviderVariable extends Partial<SettingDescription> {
  schema: z.ZodType;
  /** As an operator would write it; absent: the variable may stay unset. */
  default?: string;
  /** Accepted by its schema, never a real secret: the reference docs document every provider configured with it. */
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

export interface IntakeDeps {
  /** The record-first path: the webhook's (record, deliver), or the catch-up's (record; the API delivers). */
  payments: Pick<PaymentReceiver, 'handle'>;
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

export type ConfiguredProvider = { definition: ProviderDefinition; settings: unknown };

/** The providers of a configuration: the one new orders are paid through, and every one configured here. */
export interface ConfiguredProviders {
  /** PAYMENT_PROVIDER's; its settings are there (a provider named but not configured is refused). */
  selected: ConfiguredProvider;
  /** Every registered provider with its settings, null where it is not configured (its webhook is not mounted). */
  all: readonly ConfiguredProvider[];
  configured: readonly ConfiguredProvider[];
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
