/**
 * The gray failures: a server that hangs instead of dying (SIGSTOP, SIGCONT after 20 s; 6 s with --quick) under a
 * paced burst, more shoppers than units (chaos/rounds/burst.ts). Every answer during the freeze must come within its
 * deadline + 1 s; through Temporal's and the worker's the sale goes on (a reserved unit is a promise the APIs'
 * starters keep).
 */
import { freezeRound } from './burst.js';
import { serverOf } from './faults.js';

/** In --quick: the freeze every kind of request meets. */
export const temporalFreeze = freezeRound({
  name: 'temporal-freeze',
  faults: 'the Temporal dev server frozen under a paced burst',
  quick: true,
  saleGoesOn: true,
  target: (targets) => serverOf(targets, 'temporal'),
});

export const redisFreeze = freezeRound({
  name: 'redis-freeze',
  faults: 'Redis frozen under a paced burst',
  target: (targets) => serverOf(targets, 'redis'),
});

export const mariadbFreeze = freezeRound({
  name: 'mariadb-freeze',
  faults: 'MariaDB frozen under a paced burst',
  target: (targets) => serverOf(targets, 'mysql'),
});

export const workerFreeze = freezeRound({
  name: 'worker-freeze',
  faults: 'the worker frozen under a paced burst',
  saleGoesOn: true,
  target: (targets) => targets.worker,
});
