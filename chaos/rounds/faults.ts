/**
 * The faults rounds inject into the suite's supervised processes: a SIGKILL (the supervisor starts the process again),
 * a freeze (SIGSTOP, then SIGCONT after a while), Redis killed with the last second of its append-only file cut off.
 */
import { readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StackServer } from '../../stack/index.js';
import type { Supervised } from '../../stack/supervisor.js';

/** The processes a fault can hit: the two APIs, the worker and the stack's servers. */
export interface Targets {
  apis: Supervised[];
  worker: Supervised;
  servers: Partial<Record<StackServer, Supervised>>;
}

/** A freeze under way: `thawed` resolves at the SIGCONT, with its time. */
export interface Freezing {
  thawed: Promise<number>;
}

type Say = (line: string) => void;

/** The stack's server of that role; the suite needs its own (an external one cannot be killed). */
export function serverOf(targets: Targets, role: StackServer): Supervised {
  const found = targets.servers[role];
  if (!found) throw new Error(`the ${role} server is external: the fault suite needs its own`);
  return found;
}

/** The first API: the one a round kills (clients go on through the other). */
export function firstApi(targets: Targets): Supervised {
  const api = targets.apis[0];
  if (!api) throw new Error('the suite runs no API');
  return api;
}

/** SIGKILL; `holdRestartsMs` keeps the process down that long before its supervisor starts it again. */
export function kill(target: Supervised, say: Say, holdRestartsMs = 0): void {
  if (holdRestartsMs > 0) target.holdRestarts(holdRestartsMs);
  say(`SIGKILL ${target.name} (pid ${target.process?.pid})`);
  target.kill('SIGKILL');
}

/** Processes stopped by a freeze, continued at the suite's cleanup if it ends before their thaw. */
const frozen = new Set<Supervised>();

/** SIGSTOP now, SIGCONT `freezeMs` later; resolves at once. */
export function freeze(target: Supervised, freezeMs: number, say: Say): Freezing {
  say(`SIGSTOP ${target.name} (pid ${target.process?.pid}) for ${freezeMs / 1000} s`);
  target.kill('SIGSTOP');
  frozen.add(target);
  const thawed = sleep(freezeMs).then(() => {
    target.kill('SIGCONT');
    frozen.delete(target);
    say(`SIGCONT ${target.name}`);
    return Date.now();
  });
  return { thawed };
}

/** Continues every process a freeze left stopped (the suite ending mid-round). */
export function thawEveryFrozen(): void {
  for (const target of frozen) target.kill('SIGCONT');
}

export interface AofWatch {
  /** The incremental AOF file and its size about `ms` ago. */
  sizeAgo(ms: number): { file: string; size: number } | undefined;
  stop(): void;
}

/** Samples the size of Redis's incremental append-only file every 50 ms. */
export function watchAofSize(redisDir: string): AofWatch {
  const samples: Array<{ at: number; file: string; size: number }> = [];
  const timer = setInterval(() => {
    const dir = join(redisDir, 'appendonlydir');
    const incr = readdirSync(dir)
      .filter((name) => name.endsWith('.incr.aof'))
      .sort()
      .at(-1);
    if (incr) samples.push({ at: Date.now(), file: join(dir, incr), size: statSync(join(dir, incr)).size });
  }, 50);
  return {
    sizeAgo(ms) {
      const cutoff = Date.now() - ms;
      return [...samples].reverse().find((sample) => sample.at <= cutoff);
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * SIGKILL of Redis, and the last second of its append-only file cut off before its restart: what a disk that loses
 * its last writes, or a machine crash under appendfsync everysec, leaves behind. Resolves once Redis has exited.
 */
export async function killRedisLosingLastSecond(redis: Supervised, aofWatch: AofWatch, say: Say): Promise<void> {
  const before = aofWatch.sizeAgo(1_000);
  aofWatch.stop();
  kill(redis, say, 1_500);
  await redis.process?.exited;
  if (!before) throw new Error('no AOF size sample to cut back to');
  const now = statSync(before.file).size;
  truncateSync(before.file, before.size);
  say(`cut ${now - before.size} bytes (the last second of writes) off ${before.file}`);
}
