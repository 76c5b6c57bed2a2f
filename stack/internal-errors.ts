/**
 * What the APIs logged of each 500 they answered ('request failed', with the error and its stack): a 500 is a bug,
 * and its answer names no cause. Read from the API log files of a run (the fault suite's, the benchmark's).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface InternalErrorLogged {
  app: string;
  at: string;
  method?: string;
  path?: string;
  error?: string;
  stack?: string[];
}

/** The 'request failed' lines in `dir`'s `api*.log` files from `sinceMs` on (at most 20). */
export function internalErrorsLogged(dir: string, sinceMs: number): InternalErrorLogged[] {
  const found: InternalErrorLogged[] = [];
  for (const file of readdirSync(dir).filter((name) => /^api.*\.log$/.test(name))) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      if (!line.includes('"request failed"')) continue;
      try {
        const entry = JSON.parse(line) as {
          time: number;
          method?: string;
          path?: string;
          err?: { type?: string; message?: string; stack?: string };
        };
        if (entry.time < sinceMs) continue;
        found.push({
          app: file.replace(/\.log$/, ''),
          at: new Date(entry.time).toISOString(),
          ...(entry.method ? { method: entry.method } : {}),
          ...(entry.path ? { path: entry.path } : {}),
          error: `${entry.err?.type ?? 'Error'}: ${entry.err?.message ?? ''}`,
          stack: (entry.err?.stack ?? '')
            .split('\n')
            .slice(1, 6)
            .map((frame) => frame.trim()),
        });
      } catch {
        // a line cut by a kill: not an entry
      }
    }
  }
  return found.slice(0, 20);
}
