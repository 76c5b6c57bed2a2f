/**
 * The server processes of each variant, started from the repository's own entry points with the
 * app's environment: the API and worker for ours, bench/server.ts for the baselines, and the
 * pipeline benchmark's floor worker (bench/floor/worker.ts). With a CPU layout
 * (bench/cpu-layout.ts), each starts pinned to its side of the front door. With --provider stripe, Stripe as the
 * soak runs it (stripe-mock, the double in front, a webhook tap), once for the whole run.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startWebhookTap, type TappedDelivery, type WebhookTap } from '../stack/webhook-tap.js';
import { httpCall } from '../toolkit/http-client.js';
import {
  spawnAppProcess,
  spawnScriptProcess,
  waitUntilAppReady,
  type AppRole,
  type CommandWrapper,
} from '../stack/app-processes.js';
import { freePort, waitUntilReady, type ManagedProcess } from '../stack/process.js';
import { loadToolPaths } from '../stack/services.js';
import { startStripeMock } from '../stack/stripe-mock.js';
import { spawnStripeDouble } from '../stack/stripe-double-process.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import type { Variant } from './args.js';
import type { BeforeCheckout } from './before.js';
import { layoutCommand, setAutogroupNice, type CpuRole, type LayoutCpus } from './cpu-layout.js';

/** The processes behind the front door (the order pipeline, the queue's consumer); every other one answers shoppers. */
const BEHIND_FRONT_DOOR = new Set(['worker', 'before-worker', 'bench-queue-consumer']);
const roleOf = (name: string): CpuRole => (BEHIND_FRONT_DOOR.has(name) ? 'back' : 'front');

export interface VariantServers {
  url: string;
  processes: ManagedProcess[];
  /** The worker's Prometheus endpoint (ours and before): its sticky cache's figures. */
  workerMetricsUrl?: string;
}

export async function startVariant(
  variant: Variant,
  options: {
    root: string;
    workDir: string;
    env: Record<string, string | undefined>;
    profileDir?: string;
    cpus?: LayoutCpus;
  },
): Promise<VariantServers> {
  const { root, workDir, env, profileDir, cpus } = options;
  const port = await freePort();
  const started: ManagedProcess[] = [];
  // The soak's probe in the worker when BENCH_WORKER_PROBE_PORT names its port (launchWorker).
  const launcher = launcherFor({
    root,
    workDir,
    env: { ...env, PORT: String(port) },
    profileDir,
    cpus,
    started,
    probes: true,
  });
  const url = `http://127.0.0.1:${port}`;
  let workerMetricsUrl: string | undefined;
  try {
    if (variant === 'ours') {
      workerMetricsUrl = (await launchWorker(launcher, workDir)).metricsUrl;
      await launcher.startApp('api', 'api', {}, 60_000);
    } else {
      const server = launcher.spawn(`bench-${variant}`, { script: 'bench/server.ts', args: [variant] });
      // Any answer at all will do for a server with no health route; a failure (no answer) never.
      await waitUntilReady(
        server,
        async () => (await httpCall('GET', url, { timeoutMs: 5_000 })).failure === null,
        60_000,
      );
      if (variant === 'queue') {
        const consumer = launcher.spawn('bench-queue-consumer', {
          script: 'bench/server.ts',
          args: ['queue-consumer'],
        });
        await waitUntilReady(
          consumer,
          async () => readFileSync(consumer.logFile, 'utf8').includes('consuming'),
          60_000,
        );
      }
    }
  } catch (err) {
    for (const proc of started) await proc.stop();
    throw err;
  }
  return { url, processes: started, ...(workerMetricsUrl ? { workerMetricsUrl } : {}) };
}

/** Stripe for the run's ours and before (--provider stripe): the servers' environment and the shoppers' double. */
export interface StripeProvider {
  /** What ours' API and worker add to their environment: PAYMENT_PROVIDER=stripe, the double's URL and keys. */
  env: Record<string, string>;
  /** The double: where shoppers confirm their PaymentIntents. */
  url: string;
  secretKey: string;
  /** stripe-mock and the double, for the CPU figures. */
  processes: ManagedProcess[];
  /** The API the double's webhooks go to from now on (each run starts its own); null: none. */
  deliverTo(apiUrl: string | null): void;
  /** Gets every delivery the API answered from now on; undefined: stops. */
  observe(sink: ((delivery: TappedDelivery) => void) | undefined): void;
  stop(): Promise<void>;
}

/**
 * stripe-mock, the Stripe double in front of it and a tap in front of the API's Stripe route, as soak/run.ts starts
 * them: the double's rate limit off (the benchmark measures the app, not Stripe's test-mode budget).
 */
export async function startStripeProvider(options: {
  root: string;
  workDir: string;
  runId: string;
}): Promise<StripeProvider> {
  const { root, workDir, runId } = options;
  const stripeMock = await startStripeMock({
    tools: loadToolPaths(),
    dataDir: join(workDir, 'stripe-mock'),
    port: await freePort(),
  });
  let sink: ((delivery: TappedDelivery) => void) | undefined;
  let tap: WebhookTap | undefined;
  let double: ManagedProcess | undefined;
  try {
    tap = await startWebhookTap(null, '/api/payments/stripe', undefined, (delivery) => sink?.(delivery));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const secretKey = 'sk_test_bench';
    const env = {
      PAYMENT_PROVIDER: 'stripe',
      STRIPE_API_URL: url,
      STRIPE_SECRET_KEY: secretKey,
      STRIPE_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString('hex')}`,
      STRIPE_DEPLOYMENT_TAG: `bench-${runId}`,
      // Stripe's live rate: the default (20/s) is test mode's, and the phase would measure that queue.
      STRIPE_REQUESTS_PER_SECOND: '100',
    };
    double = await spawnStripeDouble({
      root,
      workDir,
      stripeMockUrl: stripeMock.url,
      port,
      webhookUrl: tap.url,
      webhookSecret: env.STRIPE_WEBHOOK_SECRET,
      secretKey,
    });
    const [running, runningTap] = [double, tap];
    return {
      env,
      url,
      secretKey,
      processes: [stripeMock.process, running],
      deliverTo: (apiUrl) => runningTap.retarget(apiUrl),
      observe: (next) => {
        sink = next;
      },
      stop: async () => {
        await running.stop(5_000);
        await runningTap.close();
        await stripeMock.process.stop(5_000);
      },
    };
  } catch (err) {
    await double?.stop();
    await tap?.close();
    await stripeMock.process.stop();
    throw err;
  }
}

/**
 * `before`: an earlier commit's API and worker (bench/before.ts), started as ours is but from its
 * own checkout, on its own Node.js, with its worker bundling its own workflows at start-up.
 */
export async function startBeforeVariant(
  before: BeforeCheckout,
  options: { workDir: string; env: Record<string, string | undefined>; cpus?: LayoutCpus },
): Promise<VariantServers> {
  const { workDir, env, cpus } = options;
  const port = await freePort();
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const started: ManagedProcess[] = [];
  // Its own checkout on its own Node.js (PATH): tsx's launcher finds that node.
  const launcher = launcherFor({
    root: before.root,
    workDir,
    env: { ...env, PATH: before.path, PORT: String(port) },
    cpus,
    started,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    // Bundling its workflows at start-up takes a while.
    await launcher.startApp(
      'before-worker',
      'worker',
      { WORKER_METRICS_PORT: String(metricsPort), WORKER_HEALTH_PORT: String(healthPort) },
      180_000,
    );
    await launcher.startApp('before-api', 'api', {}, 60_000);
  } catch (err) {
    for (const proc of started) await proc.stop();
    throw err;
  }
  return { url, processes: started, workerMetricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

/**
 * The project's worker alone (the pipeline benchmark's ours phases), ready to take tasks; `name`
 * names its log. `withoutTracingInterceptors`: on a bundle without OpenTelemetry's workflow
 * interceptors, the tracing-cost benchmark's reference (src/workers/bundle.ts), never a real worker's.
 */
export async function startWorker(
  options: WorkerLaunch & { name?: string; withoutTracingInterceptors?: boolean },
): Promise<ManagedProcess> {
  const { process: worker } = await launchWorker(
    launcherFor(options),
    options.workDir,
    options.name,
    options.withoutTracingInterceptors === true,
  );
  return worker;
}

/**
 * The floor's worker (bench/floor/worker.ts), started as ours is, on `taskQueue` with the bundle
 * at `bundlePath`; ready once it has published its first count to `doneFile` (bench/floor/done-count.ts).
 */
export async function startFloorWorker(
  options: WorkerLaunch & { taskQueue: string; bundlePath: string; doneFile: string; name?: string },
): Promise<ManagedProcess> {
  const worker = launcherFor(options).spawn(
    options.name ?? 'floor-worker',
    { script: 'bench/floor/worker.ts' },
    {
      FLOOR_TASK_QUEUE: options.taskQueue,
      FLOOR_BUNDLE_PATH: options.bundlePath,
      FLOOR_DONE_FILE: options.doneFile,
    },
  );
  try {
    await waitUntilReady(worker, async () => existsSync(options.doneFile), 60_000);
  } catch (err) {
    await worker.stop();
    throw err;
  }
  return worker;
}

/**
 * `count` workers, `start(i)` starting the i-th (from 1) and resolving once it is ready. One after
 * another: the first builds the workflow bundle the others reuse, and on two cores parallel
 * start-ups only slow each other down. If one fails, those already up are stopped.
 */
export async function startWorkers(
  count: number,
  start: (i: number) => Promise<ManagedProcess>,
): Promise<ManagedProcess[]> {
  const workers: ManagedProcess[] = [];
  try {
    for (let i = 1; i <= count; i++) workers.push(await start(i));
  } catch (err) {
    await stopAll(workers);
    throw err;
  }
  return workers;
}

/** Stops every process at once (SIGTERM, then SIGKILL after the grace period). */
export async function stopAll(processes: readonly ManagedProcess[], graceMs?: number): Promise<void> {
  await Promise.all(processes.map((proc) => proc.stop(graceMs)));
}

export interface WorkerLaunch {
  root: string;
  workDir: string;
  env: Record<string, string | undefined>;
  /** Writes a V8 CPU profile of the worker into this folder. */
  profileDir?: string;
}

/** What a launcher runs: an app role, or one of the benchmark's own scripts (with its arguments). */
type Entry = AppRole | { script: string; args?: string[] };

interface Launcher {
  /** Spawns `entry` as `name` (its log `<name>.log`), on its side of the CPU layout; noted in `started`. */
  spawn(name: string, entry: Entry, extraEnv?: Record<string, string>): ManagedProcess;
  /** spawn(), then waits until the app process is ready; one that is not is stopped, and this throws. */
  startApp(name: string, role: AppRole, extraEnv: Record<string, string>, timeoutMs: number): Promise<ManagedProcess>;
}

/**
 * Launches processes of the checkout at `root` through stack/app-processes.ts: tsx, or node with --cpu-prof when
 * profiling; with `probes`, node with the soak's probe into a process whose environment names SOAK_PROBE_PORT
 * (BENCH_WORKER_PROBE_PORT: the variants' worker). With `cpus`, pinned and prioritised by the layout.
 */
function launcherFor(
  options: WorkerLaunch & { cpus?: LayoutCpus; started?: ManagedProcess[]; probes?: boolean },
): Launcher {
  const { root, workDir, env, profileDir, cpus, started } = options;
  const spawn: Launcher['spawn'] = (name, entry, extraEnv = {}) => {
    // The probe goes on node's own command line: in NODE_OPTIONS, tsx's launcher would load it too.
    const probe = options.probes === true && Boolean(extraEnv.SOAK_PROBE_PORT);
    const wrapper: CommandWrapper | undefined = cpus
      ? ([command, args]) => layoutCommand(cpus, roleOf(name), command, args)
      : undefined;
    const launch = {
      name,
      root,
      nodeFlags: [
        ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
        ...(probe ? ['--expose-gc'] : []),
      ],
      preloads: probe ? [PROBE_SCRIPT] : [],
      wrapper,
      logFile: join(workDir, `${name}.log`),
      env: { ...env, ...extraEnv },
    };
    const proc =
      typeof entry === 'string'
        ? spawnAppProcess({ ...launch, role: entry })
        : spawnScriptProcess({ ...launch, ...entry });
    // Its own session (spawned detached): the session's autogroup carries the layout's priority.
    if (roleOf(name) === 'back' && cpus?.backNice) setAutogroupNice(proc.pid, cpus.backNice);
    started?.push(proc);
    return proc;
  };
  return {
    spawn,
    async startApp(name, role, extraEnv, timeoutMs) {
      const proc = spawn(name, role, extraEnv);
      try {
        await waitUntilAppReady(proc, { role, env: { ...env, ...extraEnv } }, timeoutMs);
      } catch (err) {
        await proc.stop();
        throw err;
      }
      return proc;
    },
  };
}

/** This checkout's probe: an earlier commit's (--before) may have none, and the reading must be the same. */
const PROBE_SCRIPT = join(import.meta.dirname, '..', 'soak', 'probe.ts');

async function launchWorker(
  launcher: Launcher,
  workDir: string,
  name = 'worker',
  withoutTracingInterceptors = false,
): Promise<{ process: ManagedProcess; metricsUrl: string }> {
  // Each kind of bundle in its own file, so that alternating them never rebuilds either.
  const bundle = join(workDir, withoutTracingInterceptors ? 'workflow-bundle-bare.js' : 'workflow-bundle.js');
  await buildWorkflowBundle(bundle, { withoutTracingInterceptors });
  // Free ports for the worker's metrics and health, so that a running `npm start` never collides.
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  // BENCH_WORKER_PROBE_PORT: the soak's probe (soak/probe.ts) in the worker alone, for its heaps after a forced GC.
  const probePort = process.env.BENCH_WORKER_PROBE_PORT;
  const worker = await launcher.startApp(
    name,
    'worker',
    {
      WORKFLOW_BUNDLE_PATH: bundle,
      WORKER_METRICS_PORT: String(metricsPort),
      WORKER_HEALTH_PORT: String(healthPort),
      ...(probePort ? { SOAK_PROBE_PORT: probePort } : {}),
    },
    60_000,
  );
  return { process: worker, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}
