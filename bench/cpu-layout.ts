/**
 * The burst benchmark's CPU layouts (`--layout shared|split`), applied with util-linux's `taskset`.
 *
 *   shared  every process may run on every CPU the benchmark was given (what a single box does),
 *           the pipeline behind the front door (Temporal dev server, worker, MariaDB, the queue's
 *           consumer; not Redis, which answers shoppers) at nice 10, as a box running both is set
 *           up: the shoppers are answered first and the pipeline takes the CPU they leave. Every
 *           variant gets the same priorities (before's worker, the queue's consumer alike).
 *   split   the load generator and the front door (the API for ours, bench/server.ts for the
 *           baselines) on the first CPU; everything behind the front door (Temporal dev server,
 *           worker, MariaDB, Redis, the queue's consumer) on the second: the order pipeline can no
 *           longer take CPU from the process answering the shoppers, as on separate hosts.
 *
 * Processes the benchmark spawns itself are started under `nice -n` and `taskset -c` (taskset sets the affinity,
 * then execs the command: same pid, and tsx's own node child inherits it). The stack's servers,
 * started by stack/, and the benchmark's own process are pinned after the fact by pid with
 * `taskset -a -p`, every thread of every process in the server's process group; threads created
 * later inherit the affinity of the thread that creates them. Servers the benchmark did not start
 * (given as TEMPORAL_ADDRESS, REDIS_URL, MYSQL_URL) are never pinned: they are not its processes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { pidsOfGroup } from '../stack/cpu.js';

export const LAYOUTS = ['shared', 'split'] as const;
export type CpuLayout = (typeof LAYOUTS)[number];

/** Which side of the front door a process is on. */
export type CpuRole = 'front' | 'back';

/**
 * The CPU lists (taskset's `-c` syntax, e.g. `0`, `0-1`) each role runs on in one layout, and the niceness of the
 * processes behind the front door.
 */
export interface LayoutCpus {
  layout: CpuLayout;
  front: string;
  back: string;
  backNice: number;
}

/** On a shared box the pipeline yields to the front door: its processes run at this niceness. */
export const SHARED_BACK_NICE = 10;

/**
 * Decides the CPU lists of the layouts to run, and checks up front that they can be applied:
 * `split` needs `taskset` and at least two CPUs in the benchmark's own affinity. A run of `shared`
 * alone pins nothing (every process may run on every CPU) and only sets priorities.
 */
export function planCpuLayouts(layouts: CpuLayout[]): Map<CpuLayout, LayoutCpus> {
  if (!layouts.includes('split'))
    return new Map(layouts.map((layout) => [layout, { layout, front: '', back: '', backNice: SHARED_BACK_NICE }]));
  const probe = spawnSync('taskset', ['--version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      '--layout split pins processes with taskset, which was not found: install util-linux (apt-get install util-linux)',
    );
  }
  // The CPUs this process may use (a container's cpuset, an outer taskset), not the machine's count.
  const allowed = parseCpuList(cpusAllowedList(process.pid));
  if (allowed.length < 2) {
    throw new Error(
      `--layout split needs at least 2 CPUs; this process may run on ${allowed.length} (${formatCpuList(allowed)})`,
    );
  }
  const all = formatCpuList(allowed);
  const plans = new Map<CpuLayout, LayoutCpus>();
  for (const layout of layouts) {
    plans.set(
      layout,
      layout === 'split'
        ? { layout, front: String(allowed[0]), back: String(allowed[1]), backNice: 0 }
        : { layout, front: all, back: all, backNice: SHARED_BACK_NICE },
    );
  }
  return plans;
}

/** Pins every thread of one process (`taskset -a -p -c`). A process that ended meanwhile is skipped. */
export function pinProcess(pid: number, cpus: string): void {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if (pidsAlive([pid]).length > 0)
      throw new Error(`taskset -a -p -c ${cpus} ${pid} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Pins every process of a process group (a server and any helper it forked), all threads. */
export function pinGroup(pgid: number, cpus: string): void {
  for (const pid of pidsOfGroup(pgid)) pinProcess(pid, cpus);
}

/**
 * The command line that starts `command` on its side of the front door: pinned to that side's CPUs
 * (none given: unpinned), behind the front door at the layout's niceness (nice and taskset exec it:
 * same pid, and every thread it starts inherits both).
 */
export function layoutCommand(
  layout: LayoutCpus | undefined,
  role: CpuRole,
  command: string,
  args: string[],
): [string, string[]] {
  const cpus = layout?.[role] || undefined;
  const nice = role === 'back' ? (layout?.backNice ?? 0) : 0;
  const [pinned, pinnedArgs]: [string, string[]] =
    cpus === undefined ? [command, args] : ['taskset', ['-c', cpus, command, ...args]];
  return nice === 0 ? [pinned, pinnedArgs] : ['nice', ['-n', String(nice), pinned, ...pinnedArgs]];
}

/**
 * Sets the niceness of a process's session as the scheduler sees it. With autogroups
 * (/proc/sys/kernel/sched_autogroup_enabled, Debian's default) each session is one group, shared
 * fairly with the other sessions whatever its threads' nice values, and every server here runs in
 * a session of its own: the group's own niceness (/proc/<pid>/autogroup) is what yields its CPU.
 * Without autogroups the file is absent and the threads' nice values decide.
 */
export function setAutogroupNice(pid: number, nice: number): void {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
  } catch {
    /* no autogroups on this kernel, or the process ended */
  }
}

/**
 * Sets the niceness of every thread of every process of a group (Linux keeps it per thread) and of its session's
 * autogroup; one that ended meanwhile is skipped.
 */
export function reniceGroup(pgid: number, nice: number): void {
  for (const pid of pidsOfGroup(pgid)) setAutogroupNice(pid, nice);
  const tids = pidsOfGroup(pgid).flatMap((pid) => {
    try {
      return readdirSync(`/proc/${pid}/task`);
    } catch {
      return [];
    }
  });
  if (tids.length === 0) return;
  // renice reports threads that ended meanwhile and sets the others: its exit status is not the verdict.
  spawnSync('renice', ['-n', String(nice), '-p', ...tids], { stdio: 'ignore' });
}

/**
 * The CPUs every thread of a process group may run on, from /proc/<pid>/task/<tid>/status
 * (`Cpus_allowed_list`): one list when they all agree (e.g. `1`), else the distinct lists joined
 * with ` + ` (a sign that something escaped the layout). `pid` alone reads that one process.
 */
export function cpuAffinity(target: { pgid: number } | { pid: number }): string {
  const pids = 'pgid' in target ? pidsOfGroup(target.pgid) : [target.pid];
  const lists = new Set<string>();
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // ended meanwhile
    }
    for (const tid of tids) {
      try {
        lists.add(cpusAllowedListOf(`/proc/${pid}/task/${tid}/status`));
      } catch {
        /* the thread ended meanwhile */
      }
    }
  }
  return [...lists].sort().join(' + ');
}

function cpusAllowedList(pid: number): string {
  return cpusAllowedListOf(`/proc/${pid}/status`);
}

function cpusAllowedListOf(statusFile: string): string {
  const match = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(statusFile, 'utf8'));
  if (!match?.[1]) throw new Error(`no Cpus_allowed_list in ${statusFile}`);
  return match[1];
}

/** `0-2,5` → [0, 1, 2, 5]. */
export function parseCpuList(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number);
    if (from === undefined || !Number.isInteger(from)) throw new Error(`bad CPU list ${list}`);
    const last = to ?? from;
    return Array.from({ length: last - from + 1 }, (_, i) => from + i);
  });
}

/** [0, 1, 2, 5] → `0-2,5`. */
export function formatCpuList(cpus: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < cpus.length; i++) {
    const from = cpus[i]!;
    while (i + 1 < cpus.length && cpus[i + 1] === cpus[i]! + 1) i++;
    parts.push(from === cpus[i] ? String(from) : `${from}-${cpus[i]}`);
  }
  return parts.join(',');
}

function pidsAlive(pids: number[]): number[] {
  return pids.filter((pid) => {
    try {
      readFileSync(`/proc/${pid}/stat`);
      return true;
    } catch {
      return false;
    }
  });
}
