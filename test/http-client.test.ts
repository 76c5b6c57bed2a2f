/**
 * The support code's HTTP client (toolkit/http-client.ts) against servers that answer as node's does and as a raw
 * socket may: every answer framed right however its bytes are split (Content-Length, chunks with extensions and
 * trailers, until close, 1xx, 204, HEAD), every request bounded by its deadline, a refused or dropped connection told
 * apart, the connection cap and the queue's order kept, and a closed client answering every request still waiting.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { HttpClient, httpCall, isOk, type Answer } from '../toolkit/http-client.js';

const servers: Array<HttpServer | TcpServer> = [];
afterAll(async () => {
  for (const server of servers) {
    if ('closeAllConnections' in server) server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function listening(server: HttpServer | TcpServer): Promise<string> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const bodyOf = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => resolve(text));
  });

/** A fixed pseudo-random sequence (a linear congruential generator), so that no run differs from another. */
function sequence(seed: number): (below: number) => number {
  let state = seed;
  return (below) => {
    state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
    return state % below;
  };
}

describe('the HTTP client', () => {
  it('sends headers, JSON and a POST without a body as fetch would, and reads the answer', async () => {
    const url = await listening(
      createHttpServer((req, res) => {
        void bodyOf(req).then((body) => {
          res.writeHead(req.url === '/busy' ? 503 : 200, { 'content-type': 'application/json', 'retry-after': '3' });
          res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
        });
      }),
    );
    const client = new HttpClient(url, { headers: { 'x-every': 'one', 'x-mine': 'default' } });
    const json = await client.request('POST', '/orders?x=1', { json: { sku: 'é' }, headers: { 'x-mine': 'own' } });
    expect(json).toMatchObject({ status: 200, retryAfter: 3, failure: null });
    expect(json.json).toMatchObject({
      method: 'POST',
      url: '/orders?x=1',
      body: '{"sku":"é"}',
      headers: { 'content-type': 'application/json', 'content-length': '12', 'x-every': 'one', 'x-mine': 'own' },
    });
    expect(json.headers['content-type']).toBe('application/json');
    expect(json.doneAt - json.sentAt).toBeCloseTo(json.ms, 2);
    const empty = await client.request('POST', '/cancel');
    expect((empty.json as { headers: Record<string, string> }).headers['content-length']).toBe('0');
    expect(isOk(empty)).toBe(true);
    const busy = await httpCall('GET', `${url}/busy`);
    expect([busy.status, isOk(busy), busy.retryAfter]).toEqual([503, false, 3]);
    const unsafe = await client.request('GET', '/x', { headers: { 'x-split': 'a\r\nx-smuggled: 1' } });
    expect(unsafe).toMatchObject({ status: 0, failure: { kind: 'refused' } });
    client.close();
  });

  it('reads every answer whole however its bytes are framed and split', async () => {
    const random = sequence(7);
    const cases: Array<{ wire: Buffer; status: number; body: string; close: boolean; method: string }> = [];
    const text = () => Array.from({ length: random(3) === 0 ? 0 : random(3_000) }, () => 'aé€\n{'[random(5)]).join('');
    const headers =
      'Content-Type: text/plain\r\nKeep-Alive: timeout=5\r\nRetry-After: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n';
    for (let i = 0; i < 600; i++) {
      const body = text();
      const bytes = Buffer.from(body);
      // An interim answer ahead of the real one: 103, since undici (which never sends Expect: 100-continue) takes an
      // unasked-for 100 Continue for a broken connection.
      const interim = random(4) === 0 ? 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n' : '';
      const kind = random(5);
      if (kind <= 1) {
        const wire = `${interim}HTTP/1.1 200 OK\r\n${headers}Content-Length: ${bytes.length}\r\n\r\n`;
        cases.push({ wire: Buffer.concat([Buffer.from(wire), bytes]), status: 200, body, close: false, method: 'GET' });
      } else if (kind === 2) {
        const pieces = [Buffer.from(`${interim}HTTP/1.1 202 OK\r\n${headers}Transfer-Encoding: chunked\r\n\r\n`)];
        for (let at = 0; at < bytes.length;) {
          const part = bytes.subarray(at, at + 1 + random(700));
          at += part.length;
          pieces.push(
            Buffer.from(`${part.length.toString(16)}${random(3) ? '' : ';ext=1'}\r\n`),
            part,
            Buffer.from('\r\n'),
          );
        }
        pieces.push(Buffer.from(random(2) ? '0\r\nX-Trailer: t\r\n\r\n' : '0\r\n\r\n'));
        cases.push({ wire: Buffer.concat(pieces), status: 202, body, close: false, method: 'GET' });
      } else if (kind === 3) {
        const wire = `HTTP/1.1 409 Conflict\r\n${headers}Connection: close\r\n\r\n`;
        cases.push({ wire: Buffer.concat([Buffer.from(wire), bytes]), status: 409, body, close: true, method: 'GET' });
      } else {
        const wire = `HTTP/1.1 200 OK\r\n${headers}Content-Length: 1234\r\n\r\n`;
        cases.push({ wire: Buffer.from(wire), status: 200, body: '', close: false, method: 'HEAD' });
      }
    }
    // Each answer in random pieces, some after a pause, the connection closed after those that say so.
    const url = await listening(
      createTcpServer((socket: Socket) => {
        let received = '';
        socket.on('error', () => {});
        socket.on('data', (chunk: Buffer) => {
          received += chunk.toString('latin1');
          const end = received.indexOf('\r\n\r\n');
          if (end === -1) return;
          const which = cases[Number(/x-case: (\d+)/.exec(received)?.[1])]!;
          received = received.slice(end + 4);
          let at = 0;
          const write = () => {
            if (at >= which.wire.length) return void (which.close && socket.end());
            const size = 1 + random(which.wire.length < 60 ? 8 : 400);
            socket.write(which.wire.subarray(at, (at += size)));
            if (random(3) === 0) setTimeout(write, random(3));
            else write();
          };
          write();
        });
      }),
    );
    const client = new HttpClient(url, { connections: 8 });
    const answers = await Promise.all(
      cases.map((which, i) => client.request(which.method, '/', { headers: { 'x-case': String(i) } })),
    );
    const wrong = answers.flatMap((answer: Answer, i) =>
      answer.status === cases[i]!.status &&
      answer.body === cases[i]!.body &&
      answer.retryAfter === 2 &&
      JSON.stringify(answer.headers['set-cookie']) === '["a=1","b=2"]'
        ? []
        : [`${i}: ${answer.status} ${answer.failure?.message ?? ''} ${JSON.stringify(answer.body.slice(0, 40))}`],
    );
    expect(wrong).toEqual([]);
    expect([client.sent, client.answered, client.busy]).toEqual([cases.length, cases.length, 0]);
    client.close();
  });

  it('gives up at the deadline, tells a refused connection from a dropped one, keeps the cap and the order', async () => {
    const order: string[] = [];
    const url = await listening(
      createHttpServer((req, res) => {
        order.push(req.url ?? '');
        if (req.url === '/hang') return;
        if (req.url === '/half') {
          res.writeHead(200, { 'content-length': '100' });
          res.write('part');
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        }
        setTimeout(() => res.end('ok'), 50);
      }),
    );
    const client = new HttpClient(url, { connections: 1, timeoutMs: 300 });
    const hung = await client.request('GET', '/hang');
    expect(hung).toMatchObject({ status: 0, failure: { kind: 'timeout' } });
    expect(hung.ms).toBeGreaterThanOrEqual(300);
    expect(hung.ms).toBeLessThan(1_000);
    expect((await client.request('GET', '/half')).failure?.kind).toBe('dropped');
    // One connection: the rest wait; a `first` request goes ahead of those waiting.
    order.length = 0;
    const queued = ['/a', '/b', '/c'].map((path) => client.request('GET', path));
    const first = client.request('GET', '/first', { first: true });
    expect([client.busy, client.waiting]).toEqual([1, 3]);
    expect((await Promise.all([...queued, first])).map((answer) => answer.body)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(order).toEqual(['/a', '/first', '/b', '/c']);
    client.close();
    // A port just let go of: nothing listens there.
    const gone = createTcpServer();
    const goneUrl = await new Promise<string>((resolve) =>
      gone.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(gone.address() as AddressInfo).port}`)),
    );
    await new Promise((resolve) => gone.close(resolve));
    expect((await new HttpClient(goneUrl).request('GET', '/')).failure?.kind).toBe('refused');
  });

  it('closed, answers the request in flight, those waiting and any later one, without hanging', async () => {
    const url = await listening(createHttpServer(() => {}));
    const client = new HttpClient(url, { connections: 1, timeoutMs: 60_000 });
    const inFlight = client.request('GET', '/hang');
    const waiting = client.request('GET', '/hang');
    await new Promise((resolve) => setTimeout(resolve, 50));
    client.close();
    expect((await inFlight).failure?.kind).toBe('dropped');
    expect((await waiting).failure).toEqual({ kind: 'refused', message: 'the client was closed' });
    expect((await client.request('GET', '/')).failure?.kind).toBe('refused');
  });
});
