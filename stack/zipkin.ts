/**
 * Zipkin's server, the local trace viewer (`OTEL_TRACES_EXPORTER=zipkin npm start`, and the tracing
 * test): its UI at /zipkin/, its API at /api/v2, spans kept in memory only. Installed by
 * scripts/install-tools.sh from Maven Central.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnLogged, waitUntilReady } from './process.js';
import type { RunningService, ToolPaths } from './services.js';

export interface RunningZipkin extends RunningService {
  /** The server's base URL: the UI is at `${url}/zipkin/`, the API at `${url}/api/v2`. */
  url: string;
}

export async function startZipkin(opts: {
  tools: ToolPaths;
  dataDir: string;
  port: number;
  timeoutMs?: number;
}): Promise<RunningZipkin> {
  if (!opts.tools.zipkinJar) {
    throw new Error(
      "Zipkin's server is not installed: run 'OTEL_TRACES_EXPORTER=zipkin bash scripts/install-tools.sh' (npm test installs it too)",
    );
  }
  mkdirSync(opts.dataDir, { recursive: true });
  // A small heap and C1 only: a local viewer holding a few thousand traces, started in seconds on two cores.
  // prettier-ignore
  const args = [
    '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xmx384m', '-jar', opts.tools.zipkinJar,
    // Loopback only, like every server of the local stack.
    '--armeria.ports[0].ip=127.0.0.1', `--armeria.ports[0].port=${opts.port}`, '--armeria.ports[0].protocols=http',
  ];
  const proc = spawnLogged('zipkin', 'java', args, {
    logFile: join(opts.dataDir, 'zipkin.log'),
    // Zipkin's own settings are environment variables; its storage defaults to memory.
    env: { ...process.env, MEM_MAX_SPANS: '200000' },
  });
  const url = `http://127.0.0.1:${opts.port}`;
  await waitUntilReady(
    proc,
    async () => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) })).ok,
    opts.timeoutMs ?? 60_000,
  );
  return { process: proc, url, env: { OTEL_EXPORTER_ZIPKIN_ENDPOINT: `${url}/api/v2/spans` } };
}
