/**
 * A TCP proxy in front of a real server, for tests that need a dependency's answers to arrive
 * late without stopping the server (which every other test file shares): `hold()` keeps what
 * clients send from reaching the server until `release()`, as a stalled network would.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface HoldingProxy {
  /** Where clients connect instead of the server (host:port). */
  port: number;
  hold(): void;
  /** Sends everything held, in order, and lets traffic through again. */
  release(): void;
  close(): Promise<void>;
}

export async function startHoldingProxy(target: { host: string; port: number }): Promise<HoldingProxy> {
  let holding = false;
  const flushes = new Set<() => void>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(target);
    sockets.add(client).add(upstream);
    const held: Buffer[] = [];
    const flush = () => {
      for (const chunk of held.splice(0)) upstream.write(chunk);
    };
    flushes.add(flush);
    client.on('data', (chunk: Buffer) => {
      if (holding) held.push(chunk);
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const end = () => {
      flushes.delete(flush);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const flush of flushes) flush();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
