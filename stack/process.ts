/**
 * Child processes of the local stack: spawned into their own process group (so a terminal's Ctrl-C
 * reaches the launcher first and it can stop things in order), logged to a file, waited for by a
 * readiness probe, stopped with SIGTERM then SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from './wait-for.js';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Where its output goes; empty when it writes to the launcher's own terminal. */
  readonly logFile: string;
  /** Resolves once the process has exited. */
  readonly exited: Promise<number | null>;
  /** The exit code once it has exited (128 for a signal), undefined while it runs. */
  readonly exitCodeNow: number | null | undefined;
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();

// Last resort: if the launcher itself exits without stopping its children, take them down with it.
process.once('exit', () => {
  for (const child of live) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export function spawnLogged(
  name: string,
  command: string,
  args: string[],
  /** `logFile: 'inherit'` writes to the launcher's own stdout and stderr (npm start's app processes). */
  options: { logFile: string | 'inherit'; cwd?: string; env?: NodeJS.ProcessEnv },
): ManagedProcess {
  const fd = options.logFile === 'inherit' ? undefined : openSync(options.logFile, 'a');
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: fd === undefined ? ['ignore', 'inherit', 'inherit'] : ['ignore', fd, fd],
    detached: true,
  });
  if (fd !== undefined) closeSync(fd);
  live.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? (signal ? 128 : null));
    });
    child.once('error', () => {
      live.delete(child);
      resolve(127);
    });
  });
  if (!child.pid) throw new Error(`${name}: could not spawn ${command}`);
  const pid = child.pid;
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  return {
    name,
    pid,
    get exitCodeNow() {
      return exitCode;
    },
    logFile: options.logFile === 'inherit' ? '' : options.logFile,
    exited,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      signalGroup(pid, 'SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
      if (!done) {
        signalGroup(pid, 'SIGKILL');
        await exited;
      }
    },
  };
}

/**
 * Sends `signal` to the process group `pid` leads, or to `pid` alone when it leads none; a gone process is no error.
 */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** The last lines of a log file, for error messages that say why a server did not come up. */
export function tailOf(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Waits until `probe` resolves true. Fails early, with the log's tail, when the process exits,
 * and after `timeoutMs` otherwise. Never a fixed sleep: start-up time varies a lot between machines.
 */
export async function waitUntilReady(
  proc: ManagedProcess,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  try {
    await waitFor(probe, {
      what: `${proc.name} to be ready`,
      timeoutMs,
      intervalMs: 50,
      backoff: 1.5,
      maxIntervalMs: 500,
      retryErrors: true,
      abortIf: () => (proc.exitCodeNow === undefined ? undefined : `it exited with code ${proc.exitCodeNow}`),
    });
  } catch (err) {
    // A process writing to the launcher's own terminal ('inherit') has its output above already.
    const log = proc.logFile ? `. Log ${proc.logFile}:\n${tailOf(proc.logFile)}` : ' (its output is above)';
    throw new Error(`${err instanceof Error ? err.message : String(err)}${log}`);
  }
}

/**
 * A TCP port that is free now on every address, for a server started a moment later. Taken below
 * the kernel's ephemeral range (net.ipv4.ip_local_port_range): a port the OS picked for listen(0)
 * comes from that range, where any outgoing connection may take it before the server binds it
 * (a worker once failed EADDRINUSE on one). Random, so parallel test files seldom try the same one.
 */
export async function freePort(): Promise<number> {
  const ephemeralFrom = ephemeralPortsFrom();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = LOWEST_FREE_PORT + Math.floor(Math.random() * (ephemeralFrom - LOWEST_FREE_PORT));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free TCP port found between ${LOWEST_FREE_PORT} and ${ephemeralFrom - 1} in 100 tries`);
}

/**
 * Below this, well-known and registered services; the local stack's own ports (3000, 3307, 6380, 7233) lie below too.
 */
const LOWEST_FREE_PORT = 10_000;

function ephemeralPortsFrom(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > LOWEST_FREE_PORT + 1_000) return low;
  } catch {
    /* not Linux: the IANA dynamic range */
  }
  return 49_152;
}

/** Whether a server could listen on `port` on every address now (0.0.0.0 conflicts with any bound address). */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
  });
}

/**
 * SIGSTOPs the process group `pid` leads and resolves once every thread of `pid` is stopped: the signal is delivered
 * asynchronously, and a server still running for a moment after kill() returns can answer a request a test meant to
 * hang (Linux: /proc/<pid>/task/<tid>/stat state `T`).
 */
export async function freezeGroup(pid: number, timeoutMs = 5_000): Promise<void> {
  signalGroup(pid, 'SIGSTOP');
  await waitFor(
    () =>
      readdirSync(`/proc/${pid}/task`).every((tid) => {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
      }),
    { what: `process ${pid} stopped`, timeoutMs, intervalMs: 5 },
  );
}
