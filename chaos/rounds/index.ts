/**
 * The fault suite's rounds, in the order a full run takes them (`npm run chaos`; `--quick` runs those marked quick;
 * `--faults a,b` the ones named). A round is a file of chaos/rounds/ (its name, faults, checks and steps: see
 * round.ts) and a line here.
 */
import { eventsReceiverFreezeWorkerKill } from './events-receiver-freeze-worker-kill.js';
import { mariadbFreeze, redisFreeze, temporalFreeze, workerFreeze } from './freezes.js';
import { apiKill, mariadbKill, redisAofTailLost, redisKill, temporalKill, workerKill } from './kills.js';
import { lineRedisFreezeApiKill } from './line-redis-freeze-api-kill.js';
import { temporalFreezePayments, workerAheadPayments, workerFreezePayments } from './payment-freezes.js';
import type { Round } from './round.js';
import { mariadbFreezeSale, temporalFreezeSale, workerFreezeSale } from './sale-freezes.js';
import { stripeLateSale } from './stripe-late-sale.js';
import { stripeWebhookDrop } from './stripe-webhook-drop.js';

export const ROUNDS: readonly Round[] = [
  apiKill,
  workerKill,
  mariadbKill,
  redisKill,
  redisAofTailLost,
  temporalKill,
  temporalFreeze,
  redisFreeze,
  mariadbFreeze,
  workerFreeze,
  workerFreezePayments,
  temporalFreezePayments,
  workerAheadPayments,
  temporalFreezeSale,
  workerFreezeSale,
  mariadbFreezeSale,
  stripeLateSale,
  stripeWebhookDrop,
  lineRedisFreezeApiKill,
  eventsReceiverFreezeWorkerKill,
];
