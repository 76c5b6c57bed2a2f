/**
 * Replays every recorded OrderWorkflow history (test/replay/histories/<release>/*.json, recorded by
 * `npm run record-histories`) against today's workflow bundle, the one production runs (with
 * OpenTelemetry's workflow interceptors). A change that would make a running order take another
 * path than its history says fails here, before it can break orders in flight.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';
import { workflowSpanSinks } from '../src/infra/tracing.js';
import { REPLAY_SCENARIOS } from './replay/scenarios.js';

const HISTORIES = join(import.meta.dirname, 'replay', 'histories');
const recorded = readdirSync(HISTORIES, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .flatMap((version) =>
    readdirSync(join(HISTORIES, version.name))
      .filter((file) => file.endsWith('.json'))
      .map((file) => ({
        version: version.name,
        scenario: file.replace(/\.json$/, ''),
        path: join(HISTORIES, version.name, file),
      })),
  );

describe('replay of recorded OrderWorkflow histories', () => {
  it('has a history of every path to replay', () => {
    expect([...new Set(recorded.map((history) => history.scenario))].sort()).toEqual(
      REPLAY_SCENARIOS.map((scenario) => scenario.name).sort(),
    );
  });

  it.each(recorded)('$version/$scenario replays deterministically', async ({ path, version, scenario }) => {
    const history: unknown = JSON.parse(readFileSync(path, 'utf8'));
    await expect(
      Worker.runReplayHistory(
        {
          workflowBundle: { codePath: inject('workflowBundlePath') },
          sinks: workflowSpanSinks(),
          replayName: `${version}-${scenario}`,
        },
        history,
        `${version}-${scenario}`,
      ),
    ).resolves.toBeUndefined();
  });
});
