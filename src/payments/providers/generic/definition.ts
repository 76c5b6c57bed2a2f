/**
 * The generic provider: this service's own signed webhook, for a provider without an adapter. Nothing made per order,
 * no API (refunds stay REFUND_REQUIRED for an operator), no variables of its own: always configured.
 */
import { Refusal } from '../../../infra/refusal.js';
import type { PaymentEvent } from '../../receiver.js';
import { defineProvider } from '../definition.js';
import { GENERIC_WEBHOOK_ROUTE } from './route.js';
import { verifyWebhookSignature } from './signature.js';

export const generic = defineProvider({
  name: 'generic',
  variables: {},
  settings: (_values, { config }) => ({ webhookSecret: config.webhookSecret }),
  webhook: GENERIC_WEBHOOK_ROUTE,
  intake: (settings, deps) => ({
    verify(raw, signature) {
      const check = verifyWebhookSignature(settings.webhookSecret, raw, signature);
      if (!check.ok) throw new Refusal('INVALID_SIGNATURE', check.reason);
    },
    handle: (_verified, body) => deps.payments.handle(body() as PaymentEvent),
  }),
});
