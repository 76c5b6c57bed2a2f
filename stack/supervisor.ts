/**
 * Restarts a crashed process with backoff, as a container restart policy would, so the local stack
 * survives the crash of any one of its processes instead of stopping everything. The fault suite
 * kills supervised processes on purpose and holds restarts to keep a server down for a while.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ManagedProcess } from './process.js';

export interface SupervisorOptions {
  /** First pause before a restart; doubles with every crash in a row, up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** A process that ran this long before it crashed resets the backoff. */
  healthyAfterMs?: number;
  /** false: watch only, never restart (throw-away stacks of tests and benchmarks). */
  restart?: boolean;
  log?: (line: string) => void;
}

export class Supervised {
  private current: ManagedProcess | undefined;
  private stopping = false;
  private crashesInARow = 0;
  private heldUntil = 0;
  private restarting: Promise<void> | undefined;
  /** How often the process was started again after a crash. */
  restarts = 0;

  constructor(
    readonly name: string,
    /** Spawns the process and resolves once it is ready (throws if it never becomes ready). */
    private readonly launch: () => Promise<ManagedProcess>,
    private readonly options: SupervisorOptions = {},
  ) {}

  /** The first start; throws if the process does not come up, so a broken set-up fails fast. */
  async start(): Promise<ManagedProcess> {
    const proc = await this.launch();
    this.watch(proc);
    return proc;
  }

  get process(): ManagedProcess | undefined {
    return this.current;
  }

  /** Resolves once the process runs again after a crash (or at once if it runs). */
  async running(): Promise<ManagedProcess> {
    for (;;) {
      if (this.restarting) await this.restarting;
      const proc = this.current;
      if (proc && !this.exitedAlready(proc)) return proc;
      if (this.stopping) throw new Error(`${this.name} is stopped`);
      await sleep(50);
    }
  }

  /** Keeps the next restart from happening before `ms` from now (a server that stays down a while). */
  holdRestarts(ms: number): void {
    this.heldUntil = Date.now() + ms;
  }

  /** SIGKILLs the running process's group, as a crash would. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    const pid = this.current?.pid;
    if (!pid) return;
    try {
      process.kill(-pid, signal);
    } catch {
      /* already gone */
    }
  }

  /** Stops supervising, then stops the process (SIGTERM, then SIGKILL after the grace period). */
  async stop(graceMs?: number): Promise<void> {
    this.stopping = true;
    await this.restarting?.catch(() => undefined);
    await this.current?.stop(graceMs);
  }

  private exited = new WeakSet<ManagedProcess>();

  private exitedAlready(proc: ManagedProcess): boolean {
    return this.exited.has(proc);
  }

  private watch(proc: ManagedProcess): void {
    this.current = proc;
    const startedAt = Date.now();
    void proc.exited.then((code) => {
      this.exited.add(proc);
      if (this.stopping || this.options.restart === false) return;
      if (Date.now() - startedAt >= (this.options.healthyAfterMs ?? 60_000)) this.crashesInARow = 0;
      this.restarting = this.restartAfterCrash(code);
    });
  }

  private async restartAfterCrash(code: number | null): Promise<void> {
    for (;;) {
      const backoff = Math.min(
        (this.options.initialDelayMs ?? 1_000) * 2 ** this.crashesInARow,
        this.options.maxDelayMs ?? 30_000,
      );
      const delay = Math.max(backoff, this.heldUntil - Date.now());
      this.crashesInARow++;
      this.options.log?.(`${this.name} exited (code ${code}); restarting in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay);
      if (this.stopping) return;
      try {
        const proc = await this.launch();
        this.restarts++;
        this.options.log?.(`${this.name} restarted (pid ${proc.pid}, restart #${this.restarts})`);
        this.watch(proc);
        return;
      } catch (err) {
        this.options.log?.(
          `${this.name} did not come back: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
        );
      }
    }
  }
}
