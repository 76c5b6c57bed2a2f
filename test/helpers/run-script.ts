/** Runs one of the project's own scripts (bench, chaos) with tsx as a child process, as npm would. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, inject } from 'vitest';

const root = resolve(import.meta.dirname, '..', '..');

/**
 * Resolves with the exit code and everything the script printed (stdout and stderr interleaved); `onLine` sees each
 * line as it comes (progress a timed-out test would otherwise lose).
 */
export function runScript(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  onLine?: (line: string) => void,
): Promise<{ code: number | null; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(join(root, 'node_modules', '.bin', 'tsx'), [join(root, script), ...args], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let partial = '';
    const take = (chunk: Buffer) => {
      const text = chunk.toString();
      output += text;
      if (!onLine) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.once('error', fail);
    child.once('close', (code) => done({ code, output }));
  });
}

/** A results folder for the calling test file, removed after its tests. */
export function tempOutDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Runs `bench/run.ts` against the test stack (its servers are given in the environment, so the benchmark starts only
 * its workers), as CI would.
 */
export function runBench(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; output: string }> {
  return runScript('bench/run.ts', args, { ...process.env, ...inject('stackEnv'), CI: 'true', ...env });
}
