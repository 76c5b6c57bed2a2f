/** Stripe (docs/operations.md, "Payments through Stripe"): intents, refunds, its signed webhook and the catch-up. */
import { defineProvider } from '../definition.js';
import { StripeProvider } from './api.js';
import { StripeIntake } from './intake.js';
import { STRIPE_WEBHOOK_ROUTE } from './route.js';
import { STRIPE_VARIABLES, stripeSettings } from './settings.js';

export const stripe = defineProvider({
  name: 'stripe',
  variables: STRIPE_VARIABLES,
  settings: stripeSettings,
  webhook: STRIPE_WEBHOOK_ROUTE,
  intake: (settings, deps) => new StripeIntake({ ...deps, settings }),
  api: (settings) => new StripeProvider(settings),
  requestsPerSecond: (settings) => settings.requestsPerSecond,
  processingAlertMs: (settings) => settings.processingAlertMs,
  catchUpIntervalMs: (settings) => settings.catchUpIntervalMs,
});
