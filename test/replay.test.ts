/**
 * Replays every recorded history of OrderWorkflow and EndpointDeliveryWorkflow
 * (test/replay/histories/<release>/*.json, recorded by `npm run record-histories`) against today's
 * workflow bundle, the one production runs (with OpenTelemetry's workflow interceptors). A change that
 * would make a running order take another path than its history says fails here, before it can break
 * orders in flight.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { loadConfig } from '../src/config/index.js';
import { eachPayload } from '../toolkit/history-payloads.js';
import { ENCRYPTED_ENCODING } from '../src/infra/payload-codec.js';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';
import { workflowSpanSinks } from '../src/infra/tracing.js';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import { testConfig } from './helpers/env.js';
import { DELIVERY_REPLAY_SCENARIOS, REPLAY_SCENARIOS } from './replay/scenarios.js';

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

describe('replay of recorded OrderWorkflow and EndpointDeliveryWorkflow histories', () => {
  it('has a history of every path to replay', () => {
    expect([...new Set(recorded.map((history) => history.scenario))].sort()).toEqual(
      [...REPLAY_SCENARIOS, ...DELIVERY_REPLAY_SCENARIOS].map((scenario) => scenario.name).sort(),
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
          // As the workers read them: the recorded histories are plain, which the codec passes through.
          dataConverter: temporalDataConverter(testConfig()),
        },
        history,
        `${version}-${scenario}`,
      ),
    ).resolves.toBeUndefined();
  });
});

/**
 * Histories as Temporal stores them, encrypted under a committed test key (`npm run record-histories -- --encrypted`):
 * a replay decodes them through the codec, as a worker does; with another key they do not replay.
 */
describe('replay through the payload codec', () => {
  const ENCRYPTED = join(import.meta.dirname, 'replay', 'encrypted');
  const fixtureKey = loadConfig({ PAYLOAD_CODEC_KEYS: readFileSync(join(ENCRYPTED, 'fixture-key'), 'utf8').trim() });
  const histories = readdirSync(ENCRYPTED).filter((file) => file.endsWith('.json'));
  it('has encrypted histories to replay', () => expect(histories.length).toBeGreaterThan(0));
  const replay = (file: string, config: Parameters<typeof temporalDataConverter>[0]) =>
    Worker.runReplayHistory(
      {
        workflowBundle: { codePath: inject('workflowBundlePath') },
        sinks: workflowSpanSinks(),
        replayName: `encrypted-${file}`,
        dataConverter: temporalDataConverter(config),
      },
      JSON.parse(readFileSync(join(ENCRYPTED, file), 'utf8')),
      `encrypted-${file}`,
    );

  it.each(histories)('%s is encrypted, replays with its key, and not with another', async (file) => {
    const history = historyFromJSON(JSON.parse(readFileSync(join(ENCRYPTED, file), 'utf8')));
    const encodings = [...eachPayload(history)].map((payload) =>
      Buffer.from(payload.metadata?.encoding ?? []).toString(),
    );
    const encrypted = encodings.filter((encoding) => encoding === ENCRYPTED_ENCODING).length;
    expect(encrypted).toBeGreaterThan(3);
    await expect(replay(file, fixtureKey)).resolves.toBeUndefined();
    await expect(replay(file, testConfig())).rejects.toThrow();
  });
});
