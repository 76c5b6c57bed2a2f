/** Stripe's variables (docs/operations.md, "Payments through Stripe") and the adapter's settings; secrets, unlogged. */
import { z } from 'zod';
import { ConfigError, durationString } from '../../../config/index.js';
import { durationToMs } from '../../../model/order-workflow.js';
import type { ProviderVariable, SettingsContext } from '../definition.js';

export type StripeSettings = NonNullable<ReturnType<typeof stripeSettings>>;

const DEV_DEPLOYMENT_TAG = 'flash-checkout-dev';

export const STRIPE_VARIABLES = {
  STRIPE_SECRET_KEY: {
    schema: z
      .string()
      .regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/, 'must be a Stripe secret or restricted key (sk_test_…, sk_live_…)'),
    meaning: '`sk_test_…` / `sk_live_…`; set with the webhook secret or not at all',
    example: 'sk_test_example',
  },
  STRIPE_WEBHOOK_SECRET: {
    schema: z.string().regex(/^whsec_[A-Za-z0-9]+$/, "must be the webhook endpoint's signing secret (whsec_…)"),
    meaning: "the webhook endpoint's signing secret, `whsec_…`",
    example: 'whsec_example',
  },
  STRIPE_API_URL: {
    schema: z.string().url(),
    meaning: 'another Stripe API: stripe-mock in tests and under `PAYMENT_PROVIDER=stripe npm start`',
    defaultNote: 'Stripe',
  },
  STRIPE_CURRENCY: {
    schema: z.string().regex(/^[a-z]{3}$/, 'must be a lowercase ISO currency code such as "usd"'),
    default: 'usd',
    meaning: 'the currency of every PaymentIntent (prices are in its minor unit)',
  },
  /** Events on others' intents (staging, `stripe listen`) are ignored, never refunded. */
  STRIPE_DEPLOYMENT_TAG: {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,100}$/, 'must be 1-100 letters, digits or . _ : - (one per deployment)'),
    default: DEV_DEPLOYMENT_TAG,
    meaning:
      "this deployment's tag on its intents; events on another's are ignored ([the intent decides](docs/fault-tolerance.md#stripe-the-intent-decides)); production refuses the default",
  },
  STRIPE_PAYMENT_METHOD_TYPES: {
    schema: z
      .string()
      .regex(/^[a-z_]+(,[a-z_]+)*$/, 'must be a comma-separated list of Stripe payment method types such as "card"'),
    default: 'card',
    meaning: 'the payment methods an intent offers, comma-separated (bank debits sit `processing` for days)',
  },
  STRIPE_PROCESSING_ALERT: {
    schema: durationString,
    default: '1h',
    meaning: "an intent still `processing` this long past its order's deadline logs an error",
  },
  /** The provider queue's maxTaskQueueActivitiesPerSecond. */
  STRIPE_REQUESTS_PER_SECOND: {
    schema: z.coerce.number().positive().max(10_000),
    default: '20',
    meaning:
      "the workflows' Stripe requests per second, across all workers (Stripe allows 25/s in test mode, 100/s live)",
  },
  /** Also how old an undelivered event must be: a younger one is still the webhook's. */
  STRIPE_CATCH_UP_INTERVAL: {
    schema: durationString,
    default: '1m',
    meaning:
      'how often the catch-up asks Stripe for events it did not deliver ([catching up](docs/fault-tolerance.md#catching-up-with-stripe))',
  },
} as const satisfies Record<string, ProviderVariable>;

type Variables = typeof STRIPE_VARIABLES;
/** The parsed variables: those with a default are always there. */
type Values = {
  [Name in keyof Variables]: Variables[Name] extends { default: string }
    ? z.output<Variables[Name]['schema']>
    : z.output<Variables[Name]['schema']> | undefined;
};

/** Stripe's settings when its keys are set (both or neither); PAYMENT_PROVIDER=stripe needs them. */
export function stripeSettings(parsed: Readonly<Record<string, unknown>>, context: SettingsContext) {
  const e = parsed as Values;
  if (Boolean(e.STRIPE_SECRET_KEY) !== Boolean(e.STRIPE_WEBHOOK_SECRET))
    throw new ConfigError('STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET go together: set both (Stripe) or neither');
  if (!e.STRIPE_SECRET_KEY || !e.STRIPE_WEBHOOK_SECRET) {
    if (context.selected)
      throw new ConfigError('PAYMENT_PROVIDER=stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET');
    return null;
  }
  if (context.production && e.STRIPE_DEPLOYMENT_TAG === DEV_DEPLOYMENT_TAG)
    throw new ConfigError(
      "STRIPE_DEPLOYMENT_TAG: is the development default; name this deployment (another one's intents are told apart by it)",
    );
  return {
    secretKey: e.STRIPE_SECRET_KEY,
    webhookSecret: e.STRIPE_WEBHOOK_SECRET,
    // The Stripe double's (or stripe-mock's) URL in tests; null: Stripe's API.
    apiUrl: e.STRIPE_API_URL?.replace(/\/+$/, '') ?? null,
    currency: e.STRIPE_CURRENCY,
    deploymentTag: e.STRIPE_DEPLOYMENT_TAG,
    paymentMethodTypes: e.STRIPE_PAYMENT_METHOD_TYPES.split(','),
    processingAlertMs: durationToMs(e.STRIPE_PROCESSING_ALERT),
    requestsPerSecond: e.STRIPE_REQUESTS_PER_SECOND,
    catchUpIntervalMs: durationToMs(e.STRIPE_CATCH_UP_INTERVAL),
  };
}
