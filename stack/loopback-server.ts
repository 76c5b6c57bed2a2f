/** How the stack's own small servers (the webhook tap, the event receiver, the fault suite's endpoints) listen. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackServer {
  /** Its base URL, http://127.0.0.1:<port>, no trailing slash. */
  url: string;
  /** Drops its open connections (a keep-alive client would hold it open) and closes it. */
  stop(): Promise<void>;
}

/** Listens on loopback, on `port` or a free one (0). */
export async function serveOnLoopback(server: Server, port = 0): Promise<LoopbackServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
