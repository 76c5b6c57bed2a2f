/**
 * A restartable server process: one role of the cluster layout (a Temporal service, a Redis node,
 * PostgreSQL, ...). A fault test kills it (SIGKILL to its process group) and starts it again with
 * exactly the same command line, ports and data directory.
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { signalGroup, type ManagedProcess } from '../process.js';

export interface RoleHandle {
  readonly role: string;
  /** The current process; a new one after each start(). */
  readonly process: ManagedProcess;
  /** True from a successful start() until the process exits (killed, stopped or crashed). */
  readonly running: boolean;
  /** Spawns the role again with the same arguments and waits until it is ready. No-op when running. */
  start(): Promise<void>;
  /** Sends `signal` (default SIGKILL) to the role's process group and waits until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM, then SIGKILL after the grace period. */
  stop(graceMs?: number): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
}

export interface RoleSpec {
  role: string;
  /** Spawns the process (spawnLogged). Called for the first start and every restart. */
  spawn(): ManagedProcess;
  /** Resolves once the freshly spawned process is ready (waitUntilReady with a real probe). */
  ready(proc: ManagedProcess): Promise<void>;
  /** Grace period for stop(); default 10 s. */
  graceMs?: number;
}

/** Spawns the role and waits until it is ready; on failure the process is stopped before rethrowing. */
export async function startRole(spec: RoleSpec): Promise<RoleHandle> {
  return restartableRole(spec.role, spec.graceMs ?? 10_000, async (spawned) => {
    const proc = spec.spawn();
    spawned(proc);
    try {
      await spec.ready(proc);
    } catch (err) {
      await proc.stop(2_000);
      throw err;
    }
  });
}

/**
 * A role around a starter that spawns and waits by itself (startMariaDb of services.ts): start()
 * calls it again with the same options, which reuses the data directory.
 */
export async function roleFromService(
  role: string,
  startService: () => Promise<{ process: ManagedProcess }>,
  graceMs = 10_000,
): Promise<RoleHandle> {
  return restartableRole(role, graceMs, async (spawned) => spawned((await startService()).process));
}

/**
 * The handle over `launch`, which spawns the process, hands it to `spawned` at once (so the handle
 * tracks it even while it is still coming up) and resolves when it is ready. Started once before
 * the handle is returned.
 */
async function restartableRole(
  role: string,
  graceMs: number,
  launch: (spawned: (proc: ManagedProcess) => void) => Promise<void>,
): Promise<RoleHandle> {
  let current: ManagedProcess | undefined;
  let exited = true;
  const spawned = (proc: ManagedProcess) => {
    current = proc;
    exited = false;
    void proc.exited.then(() => {
      if (current === proc) exited = true;
    });
  };
  const start = async () => {
    if (current && !exited) return;
    await launch(spawned);
  };
  const handle: RoleHandle = {
    role,
    get process() {
      if (!current) throw new Error(`${role} was never started`);
      return current;
    },
    get running() {
      return !exited;
    },
    start,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (!current || exited) return;
      const proc = current;
      signalGroup(proc.pid, signal);
      if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT' || signal === 'SIGQUIT')
        await proc.exited;
    },
    async stop(ms = graceMs) {
      await current?.stop(ms);
    },
    async restart() {
      await handle.stop();
      await start();
    },
  };
  await start();
  return handle;
}

const execFileAsync = promisify(execFile);

/** Runs a short-lived tool to completion; the error names the command and carries its output. */
export async function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, {
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${command} ${args.join(' ')} failed: ${e.message}\n${(e.stdout ?? '').slice(-2000)}${(e.stderr ?? '').slice(-2000)}`,
    );
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes; the error carries the last failure. */
export async function pollUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  let last = '';
  for (let delay = 50; ; delay = Math.min(delay * 1.5, 500)) {
    try {
      if (await check()) return Date.now() - t0;
      last = 'not yet';
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not reached within ${timeoutMs} ms (last: ${last})`);
    await sleep(delay);
  }
}
