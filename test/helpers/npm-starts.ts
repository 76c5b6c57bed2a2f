/**
 * `npm start` as a developer runs it twice on one machine, for the tests of a restart on a new build: the apps of a
 * checkout (stack/local-apps.ts) on the test stack, every start sharing one data directory and one codec key, as two
 * `npm start`s share `.data/`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { loadConfig, type AppConfig } from '../../src/config/index.js';
import { startLocalApps, type LocalApps } from '../../stack/local-apps.js';
import { freePort } from '../../stack/process.js';
import { openStackClients, type StackClients } from './stack-clients.js';

export class NpmStarts {
  readonly dataDir = mkdtempSync(join(tmpdir(), 'npm-start-test-'));
  /** What the starts said (drain workers started, supervisor restarts). */
  readonly lines: string[] = [];
  private readonly started: LocalApps[] = [];

  private constructor(
    readonly env: Record<string, string | undefined>,
    readonly config: AppConfig,
    /** The test's own clients of the stack, on this configuration (its task queue, its codec key). */
    readonly clients: StackClients,
  ) {}

  get queue(): string {
    return this.config.temporal.taskQueue;
  }

  /** On a task queue (so a Worker Deployment) of its own; `overrides` on top of the test stack's variables. */
  static async open(name: string, overrides: Record<string, string> = {}): Promise<NpmStarts> {
    const env = {
      ...process.env,
      ...inject('stackEnv'),
      TEMPORAL_TASK_QUEUE: `${name}-${randomUUID().slice(0, 8)}`,
      PORT: String(await freePort()),
      WORKER_HEALTH_PORT: '0',
      WORKER_METRICS_PORT: '0',
      CODEC_SERVER_PORT: '0',
      AUTH_DEV_LOGIN: 'true',
      SHUTDOWN_DRAIN: '0s',
      LOG_LEVEL: 'warn',
      // npm start keeps the key in the checkout's .data/, which a copy has not: one developer's key for both.
      PAYLOAD_CODEC_KEYS: `npm-start=${randomBytes(32).toString('base64')}`,
      ...overrides,
    };
    const config = loadConfig(env);
    return new NpmStarts(env, config, await openStackClients(config));
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.config.port}`;
  }

  /** `npm start`'s apps from `checkout`; older builds looked at again every `drainWatchMs`. */
  async start(checkout: string, drainWatchMs?: number): Promise<LocalApps> {
    const say = (line: string) => this.lines.push(line);
    const apps = await startLocalApps({
      root: checkout,
      dataDir: this.dataDir,
      env: this.env,
      config: this.config,
      say,
      supervision: { log: say, initialDelayMs: 200 },
      logFile: join(this.dataDir, `apps-${this.started.length}.log`),
      ...(drainWatchMs ? { drainWatchMs } : {}),
    });
    this.started.push(apps);
    return apps;
  }

  async close(): Promise<void> {
    for (const apps of this.started) await apps.stop().catch(() => undefined);
    await this.clients.close();
    if (!process.env.KEEP_TEST_DATA) rmSync(this.dataDir, { recursive: true, force: true });
  }
}
