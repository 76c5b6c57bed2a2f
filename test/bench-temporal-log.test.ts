import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { logMark, temporalErrorsSince } from '../bench/temporal-log.js';

const dir = mkdtempSync(join(tmpdir(), 'temporal-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the bench's count of what Temporal's dev server logged", () => {
  it('counts error lines (text and JSON) written after the mark, and the SQLite wedge among them', () => {
    const file = join(dir, 'temporal.log');
    writeFileSync(file, 'time=2026-11-26T08:00:00Z level=ERROR msg="before the phase"\n');
    const mark = logMark(file);
    const lines = [
      'time=2026-11-26T08:46:06Z level=WARN msg="slow persistence call"',
      'time=2026-11-26T08:46:06Z level=ERROR msg="Operation failed" error="interrupted (9)"',
      '{"level":"error","msg":"Persistent store operation failure","error":"interrupted (9)"}',
      'time=2026-11-26T08:46:07Z level=ERROR msg="update timed out"',
    ];
    appendFileSync(file, `${lines.join('\n')}\n`);
    const counted = temporalErrorsSince(file, mark);
    const [, operationFailed, storeFailure, updateTimedOut] = lines;
    expect(counted).toEqual({
      errors: 3,
      sqliteInterrupted: 2,
      first: operationFailed,
      // By kind (message and error, ids and numbers blanked), each with one whole line: text and JSON alike.
      kinds: {
        'Operation failed | interrupted (#)': { count: 1, example: operationFailed },
        'Persistent store operation failure | interrupted (#)': { count: 1, example: storeFailure },
        'update timed out | -': { count: 1, example: updateTimedOut },
      },
    });
  });

  it('counts nothing in a quiet log, or in none', () => {
    const file = join(dir, 'quiet.log');
    writeFileSync(file, 'time=2026-11-26T08:00:00Z level=WARN msg="nothing wrong"\n');
    expect(temporalErrorsSince(file, 0)).toEqual({ errors: 0, sqliteInterrupted: 0 });
    expect(logMark(join(dir, 'missing.log'))).toBe(0);
    expect(temporalErrorsSince(join(dir, 'missing.log'), 0)).toEqual({ errors: 0, sqliteInterrupted: 0 });
  });
});
