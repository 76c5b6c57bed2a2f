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
  /** Error lines by kind (their `msg` and `error` fields), each with one whole line: what a fix starts from. */
  kinds?: Record<string, { count: number; example: string }>;
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
  const kinds: Record<string, { count: number; example: string }> = {};
  for (const line of text.split('\n')) {
    const interrupted = line.includes('interrupted (9)');
    const error = /level[=":\s]+"?error\b/i.test(line);
    if (interrupted) sqliteInterrupted += 1;
    if (error) errors += 1;
    if (!error && !interrupted) continue;
    first ??= line.slice(0, 300);
    const kind = `${field(line, 'msg')} | ${field(line, 'error')}`;
    const known = kinds[kind];
    if (known) known.count += 1;
    else kinds[kind] = { count: 1, example: line.slice(0, 4000) };
  }
  return { errors, sqliteInterrupted, ...(first === undefined ? {} : { first, kinds }) };
}

/** A field's value in a logfmt or JSON line, without ids: the same failure on two workflows is one kind. */
function field(line: string, name: string): string {
  let value: string | undefined;
  if (line.startsWith('{')) {
    try {
      const parsed = (JSON.parse(line) as Record<string, unknown>)[name];
      value = parsed === undefined ? undefined : String(parsed);
    } catch {
      value = undefined;
    }
  } else value = new RegExp(`\\b${name}=("(?:[^"\\\\]|\\\\.)*"|\\S+)`).exec(line)?.[1]?.replace(/^"|"$/g, '');
  return (value ?? '-').replace(/[0-9a-f]{8}-[0-9a-f-]{27,}|order-[0-9A-Z]+|\d+/g, '#').slice(0, 200);
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
