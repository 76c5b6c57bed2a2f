/**
 * The one launcher of the app's own processes (the API, the worker, the codec server) for everything around src/:
 * `npm start`, the tests, the benchmark, the soak, the fault suite. It owns
 *
 *   their command line   from source (tsx) or from dist/ (node), with node's own flags, preloads (--import) and a
 *                        wrapper (faketime, a CPU layout) that may add to the environment;
 *   their spawn          spawnLogged (stack/process.ts): a process group of its own, logged to a file;
 *   their readiness      as each role says it is ready: the API's GET /healthz on PORT, the worker's GET /readyz
 *                        on WORKER_HEALTH_PORT, the codec server's CORS preflight on CODEC_SERVER_PORT; every
 *                        wait bounded.
 *
 * A tool's own TypeScript servers (bench/server.ts, the floor's worker) run the same way through spawnScriptProcess.
 */
import { join, resolve } from 'node:path';
import { CONFIG_DEFAULTS } from '../src/config/index.js';
import { answersOk, httpCall } from '../toolkit/http-client.js';
import { spawnLogged, waitUntilReady, type ManagedProcess } from './process.js';

export type AppRole = 'api' | 'worker' | 'codec-server';

/** Where an app process runs from: its TypeScript through tsx, or `npm run build`'s dist/ on node (as production). */
export type AppBuild = 'source' | 'dist';

/** Each role's entry point, relative to the checkout's root. */
const APP_ENTRY_POINTS: Readonly<Record<AppRole, Readonly<Record<AppBuild, string>>>> = {
  api: { source: 'src/api/main.ts', dist: 'dist/api/main.js' },
  worker: { source: 'src/workers/main.ts', dist: 'dist/workers/main.js' },
  'codec-server': { source: 'src/api/codec-main.ts', dist: 'dist/api/codec-main.js' },
};

/** A program and its arguments. */
export type CommandLine = [command: string, args: string[]];

/** A command line as a wrapper returns it, with the variables the wrapper adds to the process's environment. */
export type WrappedCommandLine = [command: string, args: string[], env?: Record<string, string>];

/** Runs a command line under another program (faketime, taskset, nice), which execs it in turn. */
export type CommandWrapper = (commandLine: CommandLine) => WrappedCommandLine;

/** What a process of the checkout runs with, whatever it runs. */
export interface ProcessLaunch {
  /** Its name in messages and supervisor logs. */
  name: string;
  /** The checkout it runs from (its tsx, its scripts); default this one. bench --before runs an earlier commit's. */
  root?: string;
  /** node's own flags (--cpu-prof, --expose-gc, --no-flush-bytecode); with any, node itself runs (tsx as a loader). */
  nodeFlags?: readonly string[];
  /** Modules node loads first (--import each), in order: the soak's probe, a planted leak; node runs, as for flags. */
  preloads?: readonly string[];
  /** Arguments after the script. */
  args?: readonly string[];
  /** faketime, a CPU layout; its environment goes on top of `env`. */
  wrapper?: CommandWrapper;
  /** A file its output is appended to, or 'inherit': the launcher's own stdout and stderr. */
  logFile: string;
  /** Default: `root`. */
  cwd?: string;
  /** Its whole environment (the caller's process.env included, if wanted). */
  env: Readonly<Record<string, string | undefined>>;
}

/** An app process to start: its role, where it runs from, and the rest as for any process of the checkout. */
export interface AppLaunch extends Omit<ProcessLaunch, 'name'> {
  role: AppRole;
  /** Default: the role. */
  name?: string;
  /** Default: 'source'. */
  from?: AppBuild;
}

/** A script of the checkout other than an app role (a tool's own server), run as the app's processes are. */
export interface ScriptLaunch extends ProcessLaunch {
  /** Relative to `root`: a .ts file runs through tsx, a .js file on node. */
  script: string;
}

/** A command line ready to spawn, with its whole environment. */
export interface LaunchCommand {
  command: string;
  args: string[];
  env: Record<string, string | undefined>;
}

/** How long a role may take to answer ready unless the caller says otherwise: a cold tsx start on a busy machine. */
export const DEFAULT_READY_TIMEOUT_MS = 60_000;

/** One readiness probe's deadline: a server that hangs counts as not ready yet, and the wait goes on. */
const PROBE_TIMEOUT_MS = 5_000;

const thisCheckout = resolve(import.meta.dirname, '..');

/** The command line and environment of an app process (for a caller that spawns it its own way). */
export function appCommandLine(launch: Omit<AppLaunch, 'logFile'>): LaunchCommand {
  return commandOf(APP_ENTRY_POINTS[launch.role][launch.from ?? 'source'], launch);
}

/** Spawns an app process, without waiting for it: a worker with no health port, or a caller that waits itself. */
export function spawnAppProcess(launch: AppLaunch): ManagedProcess {
  return spawnOf(launch.name ?? launch.role, appCommandLine(launch), launch);
}

/** Spawns a script of the checkout (bench/server.ts, the floor's worker) with the app's command line and log. */
export function spawnScriptProcess(launch: ScriptLaunch): ManagedProcess {
  return spawnOf(launch.name, commandOf(launch.script, launch), launch);
}

/**
 * Waits until `proc`, an app process of `role` with environment `env`, answers ready on its port (failing at once if
 * it exits, and after `timeoutMs`); the caller decides what to do with one that does not.
 */
export async function waitUntilAppReady(
  proc: ManagedProcess,
  app: Pick<AppLaunch, 'role' | 'env'>,
  timeoutMs = DEFAULT_READY_TIMEOUT_MS,
): Promise<void> {
  await waitUntilReady(proc, readinessOf(app.role, app.env), timeoutMs);
}

/**
 * Spawns an app process and resolves once it is ready (waitUntilAppReady); one that does not come up is stopped
 * before this throws, so that a supervisor's next try does not find its port taken.
 */
export async function startAppProcess(launch: AppLaunch & { readyTimeoutMs?: number }): Promise<ManagedProcess> {
  // Read before spawning: a role with its port off (0) has no readiness to wait for, and that is the caller's mistake.
  const probe = readinessOf(launch.role, launch.env);
  const proc = spawnAppProcess(launch);
  try {
    await waitUntilReady(proc, probe, launch.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

/**
 * The wrapper that runs a process with its wall clock `aheadMs` ahead (Debian's faketime); its timers keep the true
 * monotonic clock, so only what it reads as the time of day is off.
 */
export function clockAheadBy(aheadMs: number): CommandWrapper {
  return ([command, args]) => [
    'faketime',
    ['-f', `+${aheadMs / 1_000}s`, command, ...args],
    { FAKETIME_DONT_FAKE_MONOTONIC: '1' },
  ];
}

function commandOf(script: string, launch: Omit<ProcessLaunch, 'name' | 'logFile'>): LaunchCommand {
  const root = launch.root ?? thisCheckout;
  const path = join(root, script);
  const args = launch.args ?? [];
  const flags = [...(launch.nodeFlags ?? []), ...(launch.preloads ?? []).flatMap((file) => ['--import', file])];
  // tsx's launcher starts a node of its own, which would not get node's flags: with any, node runs and loads tsx.
  const [command, commandArgs]: CommandLine = script.endsWith('.js')
    ? [process.execPath, [...flags, path, ...args]]
    : flags.length === 0
      ? [join(root, 'node_modules', '.bin', 'tsx'), [path, ...args]]
      : [process.execPath, [...flags, '--import', 'tsx', path, ...args]];
  if (!launch.wrapper) return { command, args: commandArgs, env: { ...launch.env } };
  const [wrapped, wrappedArgs, wrapperEnv] = launch.wrapper([command, commandArgs]);
  return { command: wrapped, args: wrappedArgs, env: { ...launch.env, ...wrapperEnv } };
}

function spawnOf(
  name: string,
  { command, args, env }: LaunchCommand,
  launch: Omit<ProcessLaunch, 'name'>,
): ManagedProcess {
  return spawnLogged(name, command, args, {
    logFile: launch.logFile,
    cwd: launch.cwd ?? launch.root ?? thisCheckout,
    env,
  });
}

/** The variable each role's readiness is served on, and how it is asked. */
const READINESS: Readonly<
  Record<AppRole, { port: 'PORT' | 'WORKER_HEALTH_PORT' | 'CODEC_SERVER_PORT'; path: string }>
> = {
  api: { port: 'PORT', path: '/healthz' },
  worker: { port: 'WORKER_HEALTH_PORT', path: '/readyz' },
  // POST only, with a token or not; the preflight needs neither and answers 204 once it listens.
  'codec-server': { port: 'CODEC_SERVER_PORT', path: '/decode' },
};

/** The probe of a role's readiness where `env` puts it (the app's defaults for what it leaves unset). */
function readinessOf(role: AppRole, env: Readonly<Record<string, string | undefined>>): () => Promise<boolean> {
  const { port: variable, path } = READINESS[role];
  // As the app reads it (src/config): an empty value is unset, and unset is the default.
  const value = env[variable] || CONFIG_DEFAULTS[variable];
  const port = Number(value);
  if (!Number.isInteger(port) || port <= 0)
    throw new Error(`the ${role} answers ready on ${variable}, which is ${value}: give it a port to wait on`);
  const url = `http://127.0.0.1:${port}${path}`;
  return role === 'codec-server'
    ? async () => (await httpCall('OPTIONS', url, { timeoutMs: PROBE_TIMEOUT_MS })).status === 204
    : () => answersOk(url, PROBE_TIMEOUT_MS);
}
