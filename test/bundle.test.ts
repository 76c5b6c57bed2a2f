/**
 * The workflow bundle is rebuilt only when its hash changes, and the hash covers the files
 * workflowSourceFiles() lists. This test builds a bundle and checks that list against the local
 * modules webpack actually put in it: a workflow that starts importing a file outside the list
 * (say, a new module of the order's contract) would otherwise leave workers running a stale bundle.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildWorkflowBundle, workflowSourceFiles } from '../src/workers/bundle.js';

const dir = mkdtempSync(join(tmpdir(), 'bundle-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the workflow bundle', () => {
  it("is hashed over exactly the local modules webpack bundles: the workflows and the order's contract", async () => {
    const out = join(dir, 'workflow-bundle.js');
    expect(await buildWorkflowBundle(out)).toBe(true);
    const bundled = new Set(
      [...readFileSync(out, 'utf8').matchAll(/"\.\/(src\/[\w/.-]+\.[jt]s)"/g)].map(([, path]) => path!),
    );
    const hashed = workflowSourceFiles().map((file) => relative(process.cwd(), file));
    expect(hashed).toContain('src/model/order-workflow.ts');
    expect(hashed).toContain('src/model/order-rules.ts');
    expect(hashed.some((file) => file.startsWith('src/activities/'))).toBe(false);
    // The payment providers (their registry, definitions, SDKs) stay out: a workflow knows a provider by its name only.
    expect([...bundled].filter((file) => file.startsWith('src/payments/') || file.startsWith('src/config/'))).toEqual(
      [],
    );
    expect([...bundled].sort()).toEqual(hashed);
    // Built once: the same sources answer "up to date".
    expect(await buildWorkflowBundle(out)).toBe(false);
  });
});
