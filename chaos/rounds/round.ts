/**
 * What a fault round is: a name, the faults it injects, the checks that decide it, and a list of named steps (arrange,
 * start traffic, inject fault, heal, wait for quiet, check...) that the suite's runner (chaos/rounds/runner.ts) runs
 * in order, timing and logging each, on a state of the round's own that the steps fill in.
 */
import type { Client } from '@temporalio/client';
import type { ShopperAuth } from '../../src/api/auth.js';
import type { AppConfig } from '../../src/config/index.js';
import type { Stores } from '../../src/db/stores.js';
import type { RedisClient } from '../../src/infra/redis.js';
import type { RedisInventory } from '../../src/redis/inventory.js';
import type { OrderWorkflowClient } from '../../src/order/workflow-client.js';
import type { SalesService } from '../../src/sales/sales-service.js';
import type { StripeDouble } from '../../stack/stripe-double.js';
import type { RunningStripeMock } from '../../stack/stripe-mock.js';
import type { ChaosVerdict, PaymentFreezeVerdict, SaleFreezeVerdict } from '../checks.js';
import type { FreezeAnswers, ApiCounters } from '../gray.js';
import type { Targets } from './faults.js';
import type { SuiteSettings } from './settings.js';

/** The suite's stack as every round's steps see it: its clients, its processes, its settings. */
export interface Suite {
  stores: Stores;
  redis: RedisClient;
  inventory: RedisInventory;
  temporal: Client;
  sales: SalesService;
  orders: OrderWorkflowClient;
  auth: ShopperAuth;
  config: AppConfig;
  /** The suite's two APIs. */
  apiUrls: string[];
  targets: Targets;
  /** The worker's /readyz. */
  workerHealthUrl: string;
  /** Where the processes log (a 500's cause is read from there). */
  workDir: string;
  settings: SuiteSettings;
  say(line: string): void;
  /** Stripe (the double in front of stripe-mock), when a round of the run needs it (RoundNeeds.stripe). */
  stripe: SuiteStripe | undefined;
  /**
   * Starts an API selling through Stripe (PAYMENT_PROVIDER=stripe): `name` (its log), `env` added to the suite's (a
   * round's own PAYMENT_WINDOW).
   */
  startStripeApi(options?: { name?: string; env?: Record<string, string> }): Promise<RoundApi>;
  /**
   * Restarts the worker (SIGTERM: it drains and its supervisor starts it again) with `overrides` added to the suite's
   * environment (undefined: none), once the new process is ready.
   */
  restartWorkerWithEnv(overrides: Record<string, string> | undefined): Promise<void>;
  /** Restarts the worker (SIGKILL) with its wall clock `aheadMs` ahead, once its /readyz shows it. */
  restartWorkerWithClockAhead(aheadMs: number): Promise<void>;
}

export interface SuiteStripe {
  mock: RunningStripeMock;
  double: StripeDouble;
  /** Stripe's webhook signing secret for the suite's APIs and its simulated Stripe. */
  webhookSecret: string;
}

/** An API a round started for itself, stopped by the round's cleanup. */
export interface RoundApi {
  url: string;
  stop(): Promise<void>;
}

/** What a round needs of the stack beyond the suite's own, set up before the stack starts. */
export interface RoundNeeds {
  /** stripe-mock and the Stripe double, with Stripe's keys in every process's environment. */
  stripe?: boolean;
  /** Added to every process's environment. */
  env?: Record<string, string>;
}

/** How the APIs answered while a server was frozen, and after (chaos/gray.ts). */
export interface GrayFigures extends FreezeAnswers, ApiCounters {
  frozenSeconds: number;
  /** From the thaw until every API was ready with every breaker closed (null: not within 60 s). */
  healthyAfterThawSeconds: number | null;
  /** Every request sent during the freeze was answered within its deadline + 1 s. */
  answeredInTime: boolean;
}

/** A round's own checks beside the invariants, with its figures and what broke. */
export interface RoundSection {
  checks: Record<string, boolean>;
  figures: Record<string, unknown>;
  violations: string[];
}

/** The seconds every round reports: its burst, until the stores agreed after the fault, until quiet. */
export interface RoundSeconds {
  burst: number;
  storesAgreeAfterFault: number;
  quiet: number;
}

/** What a round found, once every step ran: the results file's entry is made of it. */
export interface RoundOutcome {
  /** The invariants every round checks (checkAfterFault in chaos/checks.ts) and the sale's figures. */
  invariants: ChaosVerdict;
  seconds: RoundSeconds;
  /** Freezes: how the APIs answered while the server was frozen, and after. */
  gray?: GrayFigures;
  /** Freeze-payment rounds: the payments judged by when they arrived. */
  payments?: PaymentFreezeVerdict;
  /** Freezes the sale goes on through: checkouts and reads answered, whole payment windows. */
  sale?: SaleFreezeVerdict;
  /** The Stripe rounds. */
  stripe?: RoundSection;
  /** The waiting-line round. */
  line?: RoundSection;
  /** The order-events round. */
  events?: RoundSection;
  /** Checks judged but not in the results file (worker-ahead-payments' answers: no freeze to report them under). */
  unreported?: Record<string, boolean>;
}

/** One named step of a round: runs on the round's state, which the steps before it filled in. */
export interface Step<State> {
  name: string;
  run(state: State): Promise<void>;
}

export const step = <State>(name: string, run: (state: State) => Promise<void>): Step<State> => ({ name, run });

export interface RoundDefinition<State> {
  /** The round's name in --faults and in the results file. */
  name: string;
  /** What goes wrong, in a line (printed as the round starts). */
  faults: string;
  /** Whether --quick runs it. */
  quick?: boolean;
  needs?: RoundNeeds;
  /**
   * The checks that decide the round: CHAOS_CHECKS (chaos/checks.ts) and the round's own. Each must be judged, and
   * true, for the round to hold.
   */
  checks: readonly string[];
  /** What a partial run (--faults) records of the round's plan, beside its date, faults and restarts. */
  recordedPlan?(settings: SuiteSettings): Record<string, unknown>;
  /** The round's state before its first step: nothing done yet. */
  state(suite: Suite): State;
  steps: ReadonlyArray<Step<State>>;
  /** Undoes what the steps set up (processes, webhooks, a worker's environment), whether they all ran or not. */
  cleanup?(state: State): Promise<void>;
  outcome(state: State): RoundOutcome;
}

/** A round ready to run: its steps bound to a fresh state. */
export interface OpenRound {
  steps: ReadonlyArray<{ name: string; run(): Promise<void> }>;
  cleanup(): Promise<void>;
  outcome(): RoundOutcome;
}

export interface Round {
  name: string;
  faults: string;
  quick: boolean;
  needs: RoundNeeds;
  checks: readonly string[];
  recordedPlan(settings: SuiteSettings): Record<string, unknown>;
  open(suite: Suite): OpenRound;
}

/** A round for the registry (chaos/rounds/index.ts): its state's type stays inside. */
export function defineRound<State>(definition: RoundDefinition<State>): Round {
  return {
    name: definition.name,
    faults: definition.faults,
    quick: definition.quick ?? false,
    needs: definition.needs ?? {},
    checks: definition.checks,
    recordedPlan: (settings) => definition.recordedPlan?.(settings) ?? {},
    open(suite) {
      const state = definition.state(suite);
      return {
        steps: definition.steps.map((s) => ({ name: s.name, run: () => s.run(state) })),
        cleanup: async () => definition.cleanup?.(state),
        outcome: () => definition.outcome(state),
      };
    },
  };
}
