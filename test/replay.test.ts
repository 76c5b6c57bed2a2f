/**
 * Replays every recorded OrderWorkflow history (test/replay/histories/<version>/*.json, recorded by
 * `npm run record-histories`) against today's workflow bundle. A change to OrderWorkflow that would
 * make a running order take a different path than its history says fails here, before it can
 * break orders already in flight. The bundle carries OpenTelemetry's workflow interceptors
 * (src/workers/bundle.ts), so this also proves that histories recorded before they were bundled in
 * replay with them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';
import { workflowSpanSinks } from '../src/infra/tracing.js';

const HISTORIES = join(import.meta.dirname, 'replay', 'histories');
const recorded = readdirSync(HISTORIES, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .flatMap((version) =>
    readdirSync(join(HISTORIES, version.name))
      .filter((file) => file.endsWith('.json'))
      .map((file) => ({ version: version.name, scenario: file.replace(/\.json$/, ''), path: join(HISTORIES, version.name, file) })),
  );

describe('replay of recorded OrderWorkflow histories', () => {
  it('has histories of every version to replay', () => {
    expect(recorded.length).toBeGreaterThanOrEqual(10);
  });

  it.each(recorded)('$version/$scenario replays deterministically', async ({ path, version, scenario }) => {
    const history: unknown = JSON.parse(readFileSync(path, 'utf8'));
    await expect(
      Worker.runReplayHistory(
        { workflowBundle: { codePath: inject('workflowBundlePath') }, sinks: workflowSpanSinks(), replayName: `${version}-${scenario}` },
        history,
        `${version}-${scenario}`,
      ),
    ).resolves.toBeUndefined();
  });
});
