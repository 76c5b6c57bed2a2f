/**
 * The workflow bundle is rebuilt only when its hash changes, and the hash covers the files
 * workflowSourceFiles() lists. This test builds a bundle and checks that list against the local
 * modules webpack actually put in it: a workflow that starts importing a file outside the list
 * (say, a new module of the order's contract) would otherwise leave workers running a stale bundle.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config/index.js';
import { PINNED_WORKFLOW_TYPES } from '../src/model/workflow-types.js';
import { bundleEntries, buildWorkflowBundle, workflowBuildId, workflowSourceFiles } from '../src/workers/bundle.js';
import { workerBuildId } from '../src/workers/versioning.js';
import { buildInCopy, changeFile, copyCheckout } from './helpers/builds.js';

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

describe('the workflow types', () => {
  it('every workflow the bundle registers is counted when a build drains, and nothing else', () => {
    const index = readFileSync(bundleEntries().workflows, 'utf8');
    const registered = [...index.matchAll(/^export \{ (\w+) \} from/gm)].map(([, name]) => name!);
    expect([...PINNED_WORKFLOW_TYPES].sort()).toEqual(registered.sort());
  });
});

describe('the build id', () => {
  beforeAll(() => buildWorkflowBundle(join(dir, 'workflow-bundle.js')), 60_000);

  /** The build id of a copy of this checkout elsewhere, changed by `change` (none: as it is), built by itself. */
  function buildIdOf(name: string, change?: { file: string; edit: (source: string) => string }) {
    const checkout = copyCheckout(join(dir, name));
    if (change) changeFile(checkout, change.file, change.edit);
    // Another lockfile: a package the workflows do not import (a benchmark's tool) changes nothing either.
    changeFile(checkout, 'package-lock.json', (lock) =>
      lock.replace('"lockfileVersion"', '"unrelated": 1,\n  "lockfileVersion"'),
    );
    return buildInCopy(checkout);
  }

  it('names the emitted code: the same elsewhere, after comments and a reformat; another after a code change', async () => {
    const here = workflowBuildId(join(dir, 'workflow-bundle.js'));
    expect(here).toMatch(/^[0-9a-f]{16}$/);
    // Another directory: what a fresh clone on another machine bundles (webpack names modules by their paths from it).
    expect(buildIdOf('elsewhere')).toBe(here);
    const commented = buildIdOf('commented', {
      file: 'src/workflows/order.ts',
      edit: (source) =>
        `// A comment at the top.\n${source}`
          .replace(
            'export async function OrderWorkflow(',
            '/** Another comment. */\nexport async function OrderWorkflow(',
          )
          // A reformat: what prettier with another print width would write.
          .replaceAll(
            '{ ...this.input, paymentDeadline: this.facts.paymentDeadline }',
            '{\n  ...this.input,\n  paymentDeadline: this.facts.paymentDeadline,\n}',
          ),
    });
    expect(commented).toBe(here);
    const changed = buildIdOf('changed', {
      file: 'src/model/order-rules.ts',
      edit: (source) => `${source}\nexport const ADDED_BY_A_CHANGE = 'b';\n`,
    });
    expect(changed).not.toBe(here);
  }, 120_000);

  it('changes with a codec key, not only with its id, and shows nothing of the key', () => {
    const [a, b] = [randomBytes(32).toString('base64'), randomBytes(32).toString('base64')];
    const bundle = join(dir, 'workflow-bundle.js');
    const build = (keys: string) => workerBuildId(loadConfig({ PAYLOAD_CODEC_KEYS: keys }), bundle);
    expect(build(`k1=${a}`)).toBe(build(`k1=${a}`));
    // The same id over another key: another build, drained apart from the first.
    expect(build(`k1=${b}`)).not.toBe(build(`k1=${a}`));
    expect(build(`k2=${a}`)).not.toBe(build(`k1=${a}`));
    for (const key of [a, b])
      expect(build(`k1=${key}`)).not.toContain(Buffer.from(key, 'base64').toString('hex').slice(0, 6));
  });
});
