/** Port helpers the cluster layout needs beyond freePort() of process.ts. */
import { createServer } from 'node:net';

/** True when 127.0.0.1:<port> can be bound right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free port in [min, max], tried in random order. freePort() lets the OS choose, and the OS
 * hands out ports from its ephemeral range (32768–60999 on Linux), which is too high where a port
 * has to fit a signed 16-bit column: Temporal's PostgreSQL schema stores each service's membership
 * port in cluster_membership.rpc_port, a SMALLINT (max 32767).
 */
export async function freePortInRange(min: number, max: number, avoid: Set<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = min + Math.floor(Math.random() * (max - min + 1));
    if (!avoid.has(port) && (await portIsFree(port))) return port;
  }
  throw new Error(`no free port found in ${min}-${max} after 200 tries`);
}
