/**
 * The suite's settings: the stack's environment, the burst every kill meets, the freezes' plans. Written whole into
 * the results file (`settings`), so its keys and their order are part of the results format.
 */
import { SHOPPER_WAIT_MS } from '../gray.js';
import { DEADLINE_PAYMENTS } from '../../toolkit/shoppers.js';

/** A freeze met by shoppers arriving at a steady pace (open loop): more of them than units unless said. */
export interface FreezePlan {
  freezeMs: number;
  shoppers: number;
  stock: number;
  arrivalsPerSecond: number;
  /** When the freeze begins, after the first shopper. */
  faultAfterMs: number;
}

/** A freeze mid-sale: shoppers from `faultAfterMs` before it until `tailMs` after the thaw, reading until payable. */
export interface SaleFreezePlan extends FreezePlan {
  tailMs: number;
  readEveryMs: number;
}

/** The freeze-sale rounds' plan; MariaDB's freeze is 30 s (a hung MySQL while promises wait). */
const SALE_FREEZE = {
  freezeMs: 60_000,
  arrivalsPerSecond: 10,
  faultAfterMs: 5_000,
  tailMs: 5_000,
  stock: 1_000,
  readEveryMs: 3_000,
};

function saleFreezePlan(freezeMs: number): SaleFreezePlan {
  const plan = { ...SALE_FREEZE, freezeMs };
  return { ...plan, shoppers: ((plan.faultAfterMs + plan.freezeMs + plan.tailMs) / 1_000) * plan.arrivalsPerSecond };
}

export function suiteSettings(quick: boolean) {
  const paymentFreezeOrders = Object.keys(DEADLINE_PAYMENTS).length * (quick ? 3 : 5);
  return {
    // More shoppers than units, arriving over a few seconds, so the fault lands mid-burst.
    shoppers: quick ? 160 : 600,
    stock: quick ? 110 : 420,
    concurrency: quick ? 24 : 48,
    arrivalsPerSecond: quick ? 80 : 100,
    paymentWindow: quick ? '8s' : '15s',
    reconcileInterval: '3s',
    /** The waiting shoppers' Prefer: wait=5, honoured in full. */
    checkoutMaxWait: `${SHOPPER_WAIT_MS / 1000}s`,
    /** At least CHECKOUT_MAX_WAIT + CHECKOUT_DEADLINE (5 s + the default 2 s); loadConfig refuses less. */
    reservationGrace: '7s',
    /** When the fault hits, after the burst starts. */
    faultAfterMs: quick ? 700 : 2_000,
    quiescenceTimeoutMs: 150_000,
    /** How long after a thaw the sale's 202s are waited for as rows (the freezes the sale goes on through). */
    rowsAfterThawTimeoutMs: 300_000,
    /** The gray rounds: a paced burst that outlasts the freeze's start, more shoppers than units. */
    freeze: {
      freezeMs: quick ? 6_000 : 20_000,
      shoppers: quick ? 120 : 300,
      stock: quick ? 80 : 200,
      arrivalsPerSecond: 30,
      faultAfterMs: quick ? 1_000 : 2_000,
    } satisfies FreezePlan,
    /**
     * The freeze-payment rounds: orders placed (waiting checkouts) and persisted before a freeze
     * longer than the payment window, so every deadline passes during it; one order per payment
     * kind in turn (DEADLINE_PAYMENTS), fewer orders than units.
     */
    paymentFreeze: {
      freezeMs: 60_000,
      orders: paymentFreezeOrders,
      stock: paymentFreezeOrders + 10,
      arrivalsPerSecond: 20,
    },
    /**
     * The freeze-sale rounds: shoppers checking out at a steady 10 a second from `faultAfterMs`
     * before the freeze until `tailMs` after the thaw, each reading its order every `readEveryMs`
     * until it is payable; more stock than they buy, so units remain throughout.
     */
    saleFreeze: saleFreezePlan(60_000),
    mariadbSaleFreeze: saleFreezePlan(30_000),
    quick,
  };
}

export type SuiteSettings = ReturnType<typeof suiteSettings>;
