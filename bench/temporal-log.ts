/**
 * Errors Temporal's dev server logged during a phase: a wedged server (CLI 1.5.1's SQLite answered
 * "interrupted (9)" to every call until restarted) looks like a slow app in every other figure, so a
 * phase reports what its server logged, and its figures are marked when that was not nothing.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';

export interface TemporalLogErrors {
  /** Lines logged at error level. */
  errors: number;
  /** Of those and the rest, lines saying SQLite was interrupted: the wedge. */
  sqliteInterrupted: number;
  /** The first error line, cut to 300 characters. */
  first?: string;
}

/** Where the log ends now: errors are counted from here. 0 when there is no log yet. */
export function logMark(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Counts the error lines written to `file` since `mark` (text or JSON log lines). */
export function temporalErrorsSince(file: string, mark: number): TemporalLogErrors {
  const text = readFrom(file, mark);
  let errors = 0;
  let sqliteInterrupted = 0;
  let first: string | undefined;
  for (const line of text.split('\n')) {
    const interrupted = line.includes('interrupted (9)');
    const error = /level[=":\s]+"?error\b/i.test(line);
    if (interrupted) sqliteInterrupted += 1;
    if (error) errors += 1;
    if (error || interrupted) first ??= line.slice(0, 300);
  }
  return { errors, sqliteInterrupted, ...(first === undefined ? {} : { first }) };
}

function readFrom(file: string, mark: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const length = Math.max(0, statSync(file).size - mark);
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, mark);
    return buffer.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
