/**
 * CPU seconds used by a process group (a launcher and its children: tsx and its node, a server),
 * read from /proc: steadier figures than latencies on a shared machine. Linux only; 0 elsewhere.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

/** user + system CPU seconds of every live process whose process group is `pgid`. */
export function cpuSecondsOfGroup(pgid: number): number {
  let ticks = 0;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may contain spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue; // field 5: pgrp
      ticks += Number(fields[11]) + Number(fields[12]); // fields 14, 15: utime, stime
    } catch {
      /* the process ended meanwhile */
    }
  }
  return ticks / TICKS_PER_SECOND;
}
