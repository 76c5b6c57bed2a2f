/**
 * Long freezes mid-sale (full run only), with more stock than the freeze sells: shoppers check out at 10 a second
 * throughout and read their orders until they are payable (chaos/rounds/burst.ts). Reported: the promises pending at
 * the thaw, and how long until every 202 is an order row.
 */
import { saleFreezeRound } from './burst.js';
import { serverOf } from './faults.js';

export const temporalFreezeSale = saleFreezeRound({
  name: 'temporal-freeze-sale',
  faults: 'the Temporal dev server frozen 60 s mid-sale',
  plan: (settings) => settings.saleFreeze,
  target: (targets) => serverOf(targets, 'temporal'),
});

export const workerFreezeSale = saleFreezeRound({
  name: 'worker-freeze-sale',
  faults: 'the worker frozen 60 s mid-sale',
  plan: (settings) => settings.saleFreeze,
  target: (targets) => targets.worker,
});

/** A hung MySQL (30 s) while promises wait for it. */
export const mariadbFreezeSale = saleFreezeRound({
  name: 'mariadb-freeze-sale',
  faults: 'MariaDB frozen 30 s mid-sale',
  plan: (settings) => settings.mariadbSaleFreeze,
  target: (targets) => serverOf(targets, 'mysql'),
});
