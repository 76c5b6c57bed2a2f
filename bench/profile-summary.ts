/**
 * Where a process's CPU went in a window of a V8 CPU profile (`node --cpu-prof`): self time by
 * place, a place being a package (`koa`, `ioredis`), a Node.js internal module (`node:_http_server`),
 * one of the app's files (`src/order/checkout.ts`) or a VM activity (`(garbage collector)`, a
 * native call such as `writev`). Idle time is left out. Used by bench/front-door.ts per request class.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled CPU time in the window, per request. */
  cpuUsPerRequest: number;
  /** Self time per request of every place, in µs, largest first. */
  places: Array<{ where: string; usPerRequest: number }>;
}

/**
 * Summarises the samples of `file` that fall in the window ending `afterMs` before the profile
 * ended (the process exited) and lasting `measuredMs`: the measured run, without start-up and warm-up.
 */
export function summariseProfile(
  file: string,
  requests: number,
  window: { measuredMs: number; afterMs: number },
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const to = profile.endTime - window.afterMs * 1_000;
  const from = to - window.measuredMs * 1_000;
  const self = new Map<string, number>();
  let total = 0;
  let at = profile.startTime;
  for (const [i, id] of profile.samples.entries()) {
    at += profile.timeDeltas[i] ?? 0;
    if (at < from || at > to) continue;
    const frame = byId.get(id)?.callFrame;
    if (!frame || frame.functionName === '(idle)') continue;
    const delta = profile.timeDeltas[i + 1] ?? 0;
    const where = placeOf(frame);
    self.set(where, (self.get(where) ?? 0) + delta);
    total += delta;
  }
  const perRequest = (us: number) => us / Math.max(1, requests);
  const places = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([where, us]) => ({ where, usPerRequest: perRequest(us) }));
  return { cpuUsPerRequest: perRequest(total), places };
}

function placeOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : `native ${functionName || '(anonymous)'}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  if (url.startsWith('node:')) return url.replace(/^node:internal\//, 'node:');
  const app = /\/((?:src|bench|stack)\/.+)$/.exec(url);
  return app?.[1] ?? url;
}
