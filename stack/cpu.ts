/**
 * CPU seconds used by a process group (a launcher and its children: tsx and its node, a server)
 * and the processes it forked into groups of their own, and its resident memory, read from /proc:
 * steadier figures than latencies on a shared machine. Linux only; 0 elsewhere.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

/** Resident memory pages counted by /proc/<pid>/stat (4 KiB on the Linux machines this runs on). */
const PAGE_KB = 4;

/**
 * user + system CPU seconds of every live process of the group `pgid` and of their descendants in
 * other groups (PostgreSQL's backends each call setsid(), so the postmaster's group alone misses
 * every query).
 */
export function cpuSecondsOfGroup(pgid: number): number {
  let ticks = 0;
  // Fields 14 and 15 of /proc/<pid>/stat: utime, stime.
  for (const fields of statsOfGroup(pgid)) ticks += Number(fields[11]) + Number(fields[12]);
  return ticks / TICKS_PER_SECOND;
}

/** Resident set size, in KiB, of the same processes as cpuSecondsOfGroup. */
export function rssKbOfGroup(pgid: number): number {
  let pages = 0;
  for (const fields of statsOfGroup(pgid)) pages += Number(fields[21]); // field 24: rss
  return pages * PAGE_KB;
}

/** The /proc/<pid>/stat fields, from field 3 (state) on, of the group's live processes and their descendants. */
function statsOfGroup(pgid: number): string[][] {
  const all = liveProcesses();
  const taken = new Set(all.filter(({ fields }) => Number(fields[2]) === pgid).map(({ pid }) => pid)); // field 5: pgrp
  for (let grew = true; grew;) {
    grew = false;
    for (const { pid, fields } of all) {
      // field 4: ppid
      if (!taken.has(pid) && taken.has(Number(fields[1]))) {
        taken.add(pid);
        grew = true;
      }
    }
  }
  return all.filter(({ pid }) => taken.has(pid)).map(({ fields }) => fields);
}

/** Live pids whose process group is `pgid`. */
export function pidsOfGroup(pgid: number): number[] {
  return processesOfGroup(pgid).map(({ pid }) => pid);
}

/** The group's live processes with their /proc/<pid>/stat fields from field 3 (state) on. */
function processesOfGroup(pgid: number): Array<{ pid: number; fields: string[] }> {
  return liveProcesses().filter(({ fields }) => Number(fields[2]) === pgid); // field 5: pgrp
}

/** Every live process with its /proc/<pid>/stat fields from field 3 (state) on. */
function liveProcesses(): Array<{ pid: number; fields: string[] }> {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const found: Array<{ pid: number; fields: string[] }> = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may contain spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      found.push({ pid: Number(entry), fields });
    } catch {
      /* the process ended meanwhile */
    }
  }
  return found;
}
