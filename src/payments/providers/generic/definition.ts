/** The generic provider: our own signed webhook; no API (refunds are an operator's), no variables: always on. */
import { Refusal } from '../../../infra/refusal.js';
import type { RecordedPaymentEvent } from '../../../db/payments.js';
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
    handle: (_verified, body) => deps.payments.handle(body() as RecordedPaymentEvent),
  }),
});
