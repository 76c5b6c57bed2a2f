/**
 * `npx tsx bench/tracing-cost.ts [--quick] [--orders N] [--rounds K] [--concurrency C] [--out DIR]`
 * (also `npm run bench -- --tracing-cost ...`): what tracing costs the worker per order (issue 26).
 *
 * On the pipeline benchmark's single-node stack (bench/pipeline-stack.ts; servers named in the
 * environment are used and not measured) and one Zipkin server (stack/zipkin.ts) that the traced
 * workers export to, K rounds (default 2; --quick: 1, 40 orders) of four modes, every other round
 * in reverse order (bare, off, sampled, all; all, sampled, off, bare) so that a drift of the machine
 * over the run weighs on every mode alike. Each phase has a fresh worker on its own task queue, the
 * same warm-up, then N orders reserved and started as the API does (bench/orders.ts), measured
 * until all are in MySQL (+ a settle time that takes in the span exporter's last batch):
 *   bare     a bundle without OpenTelemetry's workflow interceptors, tracing off: the reference;
 *   off      the bundle every worker runs (the interceptors always in: src/workers/bundle.ts), tracing off;
 *   sampled  tracing to Zipkin with parentbased_traceidratio 0.1, the orders started by a client
 *            that samples at 0.1 too, as the API would: its decision travels in the start's header
 *            and the workflow follows it (without a header the workflow's spans are roots, all kept);
 *   all      the same at 100 %.
 * Per mode: worker, Temporal and Zipkin CPU ms per order, done/s, and the ratios to bare. After each
 * phase Zipkin is asked what that worker sent: nothing from an untraced one, every order from `all`.
 * Every sale's invariants are checked. The run fails (exit 1) if a check or an invariant does not hold.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { context, propagation } from '@opentelemetry/api';
// A dependency of @opentelemetry/sdk-trace-node (1.30, the line every OpenTelemetry package here is on).
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { Client } from '@temporalio/client';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { loadConfig, type AppConfig } from '../src/config/index.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';
import { runThenCleanUp } from '../stack/launcher.js';
import { freePort, type ManagedProcess } from '../stack/process.js';
import { loadToolPaths } from '../stack/services.js';
import { startZipkin, type RunningZipkin } from '../stack/zipkin.js';
import { parseTracingCostArgs } from './args.js';
import {
  checkSale,
  deleteReconcileSchedule,
  openBenchClients,
  pipelineOf,
  startOrders,
  type Pipeline,
} from './orders.js';
import { measuredWorkers, measurePhase, startUntilDone } from './phase.js';
import { cpuPerOrder } from './pipeline-report.js';
import { startPipelineStack, type PipelineStack, type RunContext as PipelineRunContext } from './pipeline-stack.js';
import { startWorker, stopAll } from './processes.js';
import {
  MODES,
  WORKER_SERVICE,
  buildTracingCostResult,
  tracingCostTable,
  writeTracingCostReport,
  type TracingMode,
  type TracingPhase,
  type ZipkinCount,
} from './tracing-cost-report.js';

const root = resolve(import.meta.dirname, '..');
const args = parseTracingCostArgs(process.argv.slice(2), root);
const say = (line: string) => console.log(`[tracing-cost] ${line}`);

const workDir = mkdtempSync(join(tmpdir(), 'flash-tracing-cost-'));
let stack: PipelineStack | undefined;
let zipkin: RunningZipkin | undefined;
/** The current phase's worker, stopped by cleanup() if the run is interrupted. */
let running: ManagedProcess[] = [];

// The client interceptor puts the trace into a start's headers through the global propagator, from
// the active context: without both (no-ops by default) it sends an empty header and every workflow's
// spans become roots. Only these two are set; the global tracer provider stays the no-op one.
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

async function main(): Promise<void> {
  const t0 = Date.now();
  const runId = randomBytes(3).toString('hex');
  const loadAverageAtStart = loadavg();
  say(`load average at start ${loadAverageAtStart.map((v) => v.toFixed(2)).join(', ')} on ${cpus().length} CPUs`);
  stack = await startPipelineStack({
    layout: 'single',
    dataDir: join(workDir, 'stack'),
    log: say,
    redisAppendfsync: 'always',
  });
  zipkin = await startZipkin({ tools: loadToolPaths(), dataDir: join(workDir, 'zipkin'), port: await freePort() });
  say(`zipkin at ${zipkin.url}`);
  // The modes set tracing; none inherits the calling shell's OTEL_* settings.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OTEL_')));
  const env: Record<string, string | undefined> = {
    ...inherited,
    ...stack.env,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
  };
  const clients = await openBenchClients(env);
  const { stores, inventory, sales, temporal } = clients;
  try {
    // Both bundles before the first phase, where each phase's worker finds them (bench/processes.ts).
    await buildWorkflowBundle(join(workDir, 'workflow-bundle.js'));
    await buildWorkflowBundle(join(workDir, 'workflow-bundle-bare.js'), { withoutTracingInterceptors: true });
    const run: RunContext = { runId, env, stores, inventory, sales, temporal, stack, zipkin };

    const phases: TracingPhase[] = [];
    for (let round = 1; round <= args.rounds; round++) {
      const order = round % 2 === 1 ? [...args.modes] : [...args.modes].reverse();
      for (const mode of order) {
        const index = phases.length + 1;
        say(`phase ${index}/${args.rounds * args.modes.length}: round ${round}, ${mode} (${MODES[mode].description})`);
        const phase = await runModePhase(run, mode, round, index);
        phases.push(phase);
        sayPhase(phase);
      }
    }
    const zipkinServices = (await getJson<string[]>(`${zipkin.url}/api/v2/services`)) ?? [];
    const result = buildTracingCostResult({
      args,
      stackDescription: stack.description,
      phases,
      zipkinServices,
      loadAverageAtStart,
      commit: gitCommit(),
      elapsedMs: Date.now() - t0,
    });
    console.log(`\n${tracingCostTable(result)}`);
    const written = writeTracingCostReport(result, args.outDir);
    say(`results in ${written.json} and ${written.md}, copy in ${written.dated}`);
    if (!result.ok) {
      const failed = Object.entries(result.checks).filter(([, ok]) => !ok);
      console.error(`[tracing-cost] FAILED: ${failed.map(([name]) => name).join(', ')}`);
      process.exitCode = 1;
    }
  } finally {
    await clients.close();
  }
}

/** What every phase shares: the pipeline's, and the Zipkin the traced workers export to. */
interface RunContext extends PipelineRunContext {
  zipkin: RunningZipkin;
}

/**
 * One mode's phase: a fresh worker with the mode's bundle and environment on its own task queue,
 * the warm-up, N orders measured (Temporal, the worker and Zipkin), the sale's invariants; then,
 * with the worker stopped (its shutdown exports what it still held), what it sent Zipkin.
 */
async function runModePhase(run: RunContext, mode: TracingMode, round: number, index: number): Promise<TracingPhase> {
  const { runId, stores, inventory, sales, temporal } = run;
  const spec = MODES[mode];
  const taskQueue = `bench-tracing-${runId}-${index}-${mode}`;
  const env = { ...run.env, TEMPORAL_TASK_QUEUE: taskQueue, ...tracingEnv(spec.ratio, run.zipkin) };
  const config = loadConfig(env);
  const client = spec.ratio === null ? temporal : tracedClient(temporal, spec.ratio, config);
  const pipeline: Pipeline = pipelineOf(config, stores, inventory, client);
  // Zipkin's query window: the spans this phase's worker can have sent, from its start to its stop.
  const phaseStartedAt = Date.now();
  const worker = await startWorker({
    root,
    workDir,
    env,
    name: `worker-${index}-${mode}`,
    withoutTracingInterceptors: spec.bare,
  });
  running = [worker];
  let result: Omit<TracingPhase, 'zipkin'>;
  try {
    const awaitingPayment = (sku: string) => () => stores.reports.countOrders(sku, 'AWAITING_PAYMENT');
    // Warm-up on its own SKU through the mode's client, never measured: JIT, pools, the exporter's path.
    const warm = `TRC-${runId}-${index}-warm`;
    await sales.create({ sku: warm, name: warm, priceCents: 1_000, stock: args.warmupOrders, perUserLimit: 1 });
    await startUntilDone(args.warmupOrders, awaitingPayment(warm), () =>
      startOrders(
        pipeline,
        { sku: warm, priceCents: 1_000 },
        args.warmupOrders,
        `${runId}-${index}w`,
        args.concurrency,
      ),
    );

    const sku = `TRC-${runId}-${index}`;
    await sales.create({ sku, name: sku, priceCents: 1_000, stock: args.orders, perUserLimit: 1 });
    const machineBefore = machineSnapshot();
    const { measurement, run: started } = await measurePhase({
      kind: 'ours',
      taskQueue,
      orders: args.orders,
      processes: [
        ...run.stack.servers(),
        ...measuredWorkers([worker]),
        { name: 'zipkin', role: 'zipkin', pgid: run.zipkin.process.pid },
      ],
      done: awaitingPayment(sku),
      start: () =>
        startOrders(pipeline, { sku, priceCents: 1_000 }, args.orders, `${runId}-${index}m`, args.concurrency),
      doneMeans: 'orders reached MySQL',
      settleMs: args.settleMs,
    });
    const machine = machineSince(machineBefore, measurement);
    const invariants = await checkSale(pipeline, sku, started.started);
    result = {
      round,
      mode,
      measurement,
      invariantsOk: invariants.ok,
      invariantFailures: Object.entries(invariants.checks)
        .filter(([, ok]) => !ok)
        .map(([name]) => name),
      startedOrders: args.warmupOrders + args.orders,
      machine,
    };
  } finally {
    await stopAll([worker]);
    running = [];
    await deleteReconcileSchedule(temporal, taskQueue, say);
  }
  return { ...result, zipkin: await zipkinCount(run.zipkin.url, phaseStartedAt, spec.ratio !== null) };
}

/**
 * The worker's tracing in a mode: off (the exporter unset, as every deployment without tracing), or
 * Zipkin with the standard sampler variables (src/infra/tracing.ts), the batch processor exporting every 200 ms.
 */
function tracingEnv(ratio: number | null, zipkinServer: RunningZipkin): Record<string, string> {
  if (ratio === null) return {};
  return {
    OTEL_TRACES_EXPORTER: 'zipkin',
    ...zipkinServer.env,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: String(ratio),
    // Export as they end, not every 5 s: a busy machine can stop the worker before its last flush.
    OTEL_BSP_SCHEDULE_DELAY: '200',
  };
}

/**
 * A client on the run's connection that starts workflows as a traced API does: its start span,
 * sampled at `ratio`, goes into the start's headers, so the workflow and its activities follow that
 * decision. Its own spans go nowhere (no span processor): only the header's sampled flag matters.
 * The provider is not registered, so this process's global tracer stays the no-op one.
 */
function tracedClient(base: Client, ratio: number, config: Pick<AppConfig, 'payloadCodec'>): Client {
  const sampler =
    ratio >= 1 ? new AlwaysOnSampler() : new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  const tracer = new BasicTracerProvider({ sampler }).getTracer('bench-tracing-cost');
  return new Client({
    connection: base.connection,
    namespace: base.options.namespace,
    workflow: { queryRejectCondition: 'NOT_OPEN' },
    interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor({ tracer })] },
    dataConverter: temporalDataConverter(config),
  });
}

/** A span as Zipkin's v2 API answers it (the fields counted here). */
interface ZipkinSpan {
  name: string;
  localEndpoint?: { serviceName?: string };
}

/**
 * The worker's spans in Zipkin since `sinceMs`: all of them, their traces, and the traces that hold
 * an order's persist activity. Zipkin accepts a batch before it stores it, so this reads until two
 * reads 500 ms apart agree, and for a traced worker (`expectSpans`) until some are there (≤ 20 s):
 * a cold Zipkin once took longer than a second to store the first big batch.
 */
async function zipkinCount(url: string, sinceMs: number, expectSpans: boolean): Promise<ZipkinCount> {
  let last: ZipkinCount | undefined;
  for (let attempt = 0; attempt < 40; attempt++) {
    await sleep(500);
    const now = Date.now();
    const traces =
      (await getJson<ZipkinSpan[][]>(
        `${url}/api/v2/traces?serviceName=${WORKER_SERVICE}&endTs=${now}&lookback=${now - sinceMs + 1_000}&limit=1000000`,
      )) ?? [];
    const count: ZipkinCount = {
      spans: traces.reduce(
        (sum, trace) => sum + trace.filter((span) => span.localEndpoint?.serviceName === WORKER_SERVICE).length,
        0,
      ),
      traces: traces.length,
      tracedOrders: traces.filter((trace) => trace.some((span) => span.name === 'runactivity:persistorder')).length,
    };
    if (last && last.spans === count.spans && last.traces === count.traces && (count.spans > 0 || !expectSpans))
      return count;
    last = count;
  }
  return last!;
}

/** The JSON a GET answers; undefined when the answer is not 2xx (Zipkin knowing no such service yet). */
async function getJson<T>(url: string): Promise<T | undefined> {
  const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  return response.ok ? ((await response.json()) as T) : undefined;
}

/** The machine's busy and total ticks (/proc/stat) and this process's CPU: how busy everything else was. */
function machineSnapshot() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  const usage = process.cpuUsage();
  return {
    at: performance.now(),
    busyTicks: user + nice + system + irq + softirq + steal,
    benchMicros: usage.user + usage.system,
  };
}

/**
 * Over the measured window: the machine's busy cores, and those not spent by the measured processes or this benchmark.
 */
function machineSince(
  before: ReturnType<typeof machineSnapshot>,
  measurement: TracingPhase['measurement'],
): TracingPhase['machine'] {
  const after = machineSnapshot();
  const seconds = (after.at - before.at) / 1000;
  // USER_HZ is 100 on Linux (stack/cpu.ts reads /proc the same way).
  const busySeconds = (after.busyTicks - before.busyTicks) / 100;
  const measuredSeconds =
    measurement.cpu.reduce((sum, c) => sum + c.seconds, 0) + (after.benchMicros - before.benchMicros) / 1e6;
  return {
    seconds,
    busyCores: busySeconds / seconds,
    otherCores: Math.max(0, busySeconds - measuredSeconds) / seconds,
  };
}

function sayPhase(p: TracingPhase): void {
  const cpu = cpuPerOrder(p.measurement);
  const zipkinMs = (p.measurement.cpu.find((c) => c.role === 'zipkin')?.seconds ?? 0) * (1000 / p.measurement.orders);
  const ms = (value: number | null) => (value === null ? '—' : value.toFixed(2));
  say(
    `${p.mode}: ${p.measurement.orders} done at ${p.measurement.persistedPerSecond.toFixed(1)}/s; CPU ms/order worker ${ms(cpu.worker)}, ` +
      `Temporal ${ms(cpu.server)}, Zipkin ${ms(zipkinMs)}; Zipkin got ${p.zipkin.spans} spans, ${p.zipkin.tracedOrders} of ${p.startedOrders} orders traced; ` +
      `other processes ${p.machine.otherCores.toFixed(2)} cores; invariants ${p.invariantsOk ? 'ok' : `VIOLATED (${p.invariantFailures.join(', ')})`}`,
  );
}

/** The commit measured, `+dirty` when the worker's own code (src/) differs from it. */
function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync(
      'git',
      ['status', '--porcelain', '--', 'src/workflows', 'src/workers', 'src/activities', 'src/infra'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    ).trim();
    return dirty ? `${commit}+dirty` : commit;
  } catch {
    return 'unknown';
  }
}

async function cleanup(): Promise<void> {
  await stopAll(running, 5_000);
  await zipkin?.process.stop();
  await stack?.stop();
  rmSync(workDir, { recursive: true, force: true });
}

await runThenCleanUp('tracing-cost', main, cleanup);
