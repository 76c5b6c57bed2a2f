/**
 * The codec server (src/api/codec-server.ts) over HTTP, with the test stack's configuration and codec: Temporal's
 * codec-server protocol (encode, decode, under a namespace or with X-Namespace), CORS for the Web UI's origins only,
 * bad input answered 400 with its code and never in part, the bearer token (required in production, wrong ones
 * counted per address), and loopback by default.
 */
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  codecServerOptionsOf,
  startCodecServer,
  type CodecServerOptions,
  type RunningCodecServer,
} from '../src/api/codec-server.js';
import { ConfigError, loadConfig, type AppConfig } from '../src/config/index.js';
import { createLogger } from '../src/infra/logger.js';
import { ENCRYPTED_ENCODING } from '../src/infra/payload-codec.js';
import { productionSecrets, testConfig } from './helpers/env.js';
import { httpAt } from './helpers/http.js';

const UI = 'http://127.0.0.1:8233';
const OTHER = 'http://evil.example.test';
const TOKEN = 'codec-server-test-token-0123456789';

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const utf8 = (b64: string | undefined) => Buffer.from(b64 ?? '', 'base64').toString('utf8');
/** A payload as the Web UI sends it: proto3 JSON, every bytes field in base64. */
function asJson(payload: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')]),
    ),
    data: Buffer.from(payload.data ?? []).toString('base64'),
  };
}
const plain = (value: unknown) => asJson(defaultPayloadConverter.toPayload(value));

let config: AppConfig;
let server: RunningCodecServer;
const logger = createLogger({ logLevel: 'silent' }, 'codec-server-test');

function options(extra: Partial<CodecServerOptions> = {}) {
  return { ...codecServerOptionsOf(config, logger), port: 0, allowedOrigins: [UI], ...extra };
}

beforeAll(async () => {
  config = testConfig({ LOG_LEVEL: 'silent' });
  server = await startCodecServer(options());
});

afterAll(async () => {
  await server?.close();
});

async function post(
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  at: RunningCodecServer = server,
): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await httpAt('POST', `${at.url}${path}`, {
    headers: { 'content-type': 'application/json', ...headers },
    raw: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: response.body, headers: response.headers };
}

describe('the codec-server protocol', () => {
  it('encodes, then decodes back to exactly the payloads sent', async () => {
    const payloads = [plain({ sku: 'SKU-1', quantity: 2 }), plain('a string'), plain(null)];
    const encoded = await post('/encode', { payloads });
    expect(encoded.status).toBe(200);
    expect(encoded.headers.get('cache-control')).toBe('no-store');
    expect(encoded.body.payloads).toHaveLength(3);
    for (const payload of encoded.body.payloads as JsonPayload[]) {
      expect(utf8(payload.metadata?.encoding)).toBe(ENCRYPTED_ENCODING);
      expect(utf8(payload.data)).not.toContain('SKU-1');
    }
    const decoded = await post('/decode', encoded.body);
    expect(decoded.status).toBe(200);
    expect(decoded.body).toEqual({ payloads });
  });

  it('serves the namespace form (/{namespace}/decode, the CLI) and X-Namespace (the UI); refuses another namespace', async () => {
    const namespace = config.temporal.namespace;
    const { body: encoded } = await post(`/${namespace}/encode`, { payloads: [plain('ns')] });
    const byPath = await post(`/${namespace}/decode`, encoded);
    expect(byPath.status).toBe(200);
    expect(byPath.body).toEqual({ payloads: [plain('ns')] });
    const byHeader = await post('/decode', encoded, { 'X-Namespace': namespace });
    expect(byHeader.status).toBe(200);
    expect(byHeader.body).toEqual({ payloads: [plain('ns')] });
    const other = await post('/decode', encoded, { 'X-Namespace': 'someone-elses' });
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe('FORBIDDEN');
    expect((await post('/someone-elses/decode', encoded)).status).toBe(403);
  });

  it('passes payloads that are not encrypted through decode as they are (search attributes, older histories)', async () => {
    const payloads = [plain({ plain: true }), { metadata: { encoding: base64('binary/null') } }];
    const decoded = await post('/decode', { payloads });
    expect(decoded.status).toBe(200);
    expect(decoded.body).toEqual({ payloads: [payloads[0], { metadata: payloads[1]!.metadata, data: '' }] });
  });

  it('answers other methods 405 and other paths 404, in the error shape', async () => {
    const get = await httpAt('GET', `${server.url}/decode`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST, OPTIONS');
    expect(get.body.error.code).toBe('METHOD_NOT_ALLOWED');
    const unknown = await post('/payloads/decode/now', { payloads: [] });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('NOT_FOUND');
  });
});

describe('bad input: a 400 with its code, never a 500, never part of a batch', () => {
  it.each([
    ['a body that is not JSON', '{"payloads": [', /not JSON/],
    ['no payloads array', { payload: [] }, /payloads array/],
    ['a JSON array', [], /payloads array/],
    ['a payload that is not an object', { payloads: ['abc'] }, /payloads\[0\]: must be an object/],
    [
      'data not in base64',
      { payloads: [{ metadata: { encoding: base64('json/plain') }, data: 'not base64!' }] },
      /payloads\[0\]: data must be base64/,
    ],
    // (Text of base64 letters alone, such as json/plain, reads as base64: proto3 JSON cannot tell.)
    [
      'metadata not in base64',
      { payloads: [{ metadata: { encoding: 'json plain' } }] },
      /payloads\[0\]: metadata\.encoding must be base64/,
    ],
    ['metadata that is a string', { payloads: [{ metadata: 'x' }] }, /metadata must be an object/],
  ])('%s', async (_what, body, message) => {
    const answer = await post('/decode', body);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('INVALID_REQUEST');
    expect(answer.body.error.message).toMatch(message);
    expect(answer.body.payloads).toBeUndefined();
  });

  it('a tampered payload among good ones refuses the whole batch, naming the one at fault', async () => {
    const { body: encoded } = await post('/encode', { payloads: [plain('one'), plain('two')] });
    const [first, second] = encoded.payloads as JsonPayload[];
    const data = Buffer.from(second!.data!, 'base64');
    data[20] = data[20]! ^ 1;
    const answer = await post('/decode', { payloads: [first, { ...second, data: data.toString('base64') }] });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ code: 'INVALID_REQUEST', details: { payload: 1 } });
    expect(answer.body.error.message).toMatch(/payloads\[1\].*failed authentication/);
    expect(answer.body.payloads).toBeUndefined();
  });

  it('a payload of a key the server does not hold is a 400 too', async () => {
    const { body: encoded } = await post('/encode', { payloads: [plain('x')] });
    const payload = encoded.payloads[0] as JsonPayload;
    const answer = await post('/decode', {
      payloads: [{ ...payload, metadata: { ...payload.metadata, 'encryption-key-id': base64('retired') } }],
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toMatch(/key "retired"/);
    // Which keys it holds is nobody's business but the operator's.
    for (const key of config.payloadCodec.keys) expect(answer.body.error.message).not.toContain(key.id);
  });

  it('other content types, compressed bodies and oversized bodies are refused with 400', async () => {
    const text = await httpAt('POST', `${server.url}/decode`, {
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
      raw: '{"payloads":[]}',
    });
    expect(text.status).toBe(400);
    const gzip = await post('/decode', '{"payloads":[]}', { 'content-encoding': 'gzip' });
    expect(gzip.status).toBe(400);
    const huge = await post('/decode', { payloads: [{ data: 'A'.repeat(5 * 1024 * 1024) }] });
    expect(huge.status).toBe(400);
    expect(huge.body.error.message).toMatch(/larger than 4 MB/);
  });
});

describe('CORS: the Web UI is a browser page on another origin', () => {
  const preflight = (origin: string) =>
    httpAt('OPTIONS', `${server.url}/decode`, {
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-namespace',
      },
    });

  it("answers the UI origin's preflight with the methods and headers the UI sends, credentials allowed", async () => {
    const answer = await preflight(UI);
    expect(answer.status).toBe(204);
    expect(answer.headers.get('access-control-allow-origin')).toBe(UI);
    expect(answer.headers.get('access-control-allow-credentials')).toBe('true');
    expect(answer.headers.get('access-control-allow-methods')).toBe('POST, OPTIONS');
    expect(answer.headers.get('access-control-allow-headers')).toBe('Content-Type, X-Namespace, Authorization');
    expect(answer.headers.get('vary')).toMatch(/Origin/);
    const decode = await post('/decode', { payloads: [] }, { origin: UI });
    expect(decode.status).toBe(200);
    expect(decode.headers.get('access-control-allow-origin')).toBe(UI);
  });

  it('gives another origin no Access-Control-Allow-Origin, and refuses its POST before decrypting anything', async () => {
    const answer = await preflight(OTHER);
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
    expect(answer.headers.get('access-control-allow-headers')).toBeNull();
    const { body: encoded } = await post('/encode', { payloads: [plain('secret')] });
    const decode = await post('/decode', encoded, { origin: OTHER });
    expect(decode.status).toBe(403);
    expect(decode.body.error.code).toBe('FORBIDDEN');
    expect(decode.headers.get('access-control-allow-origin')).toBeNull();
    expect(JSON.stringify(decode.body)).not.toContain(base64('"secret"'));
  });
});

describe('the bearer token (CODEC_SERVER_TOKEN)', () => {
  let guarded: RunningCodecServer;
  beforeAll(async () => {
    guarded = await startCodecServer(options({ token: TOKEN }));
  });
  afterAll(async () => {
    await guarded?.close();
  });

  it('refuses a POST without it or with another, 401; answers with it; preflights need none', async () => {
    const none = await post('/decode', { payloads: [] }, {}, guarded);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('UNAUTHORIZED');
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    const wrong = await post('/decode', { payloads: [] }, { authorization: `Bearer ${TOKEN}x` }, guarded);
    expect(wrong.status).toBe(401);
    const right = await post('/decode', { payloads: [plain('ok')] }, { authorization: `Bearer ${TOKEN}` }, guarded);
    expect(right.status).toBe(200);
    expect(right.body).toEqual({ payloads: [plain('ok')] });
    const preflight = await httpAt('OPTIONS', `${guarded.url}/decode`, {
      headers: { origin: UI, 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
  });

  it('counts wrong tokens per address: past RATE_LIMIT_AUTH_FAILURES, 429 even with the right one', async () => {
    const counting = await startCodecServer(
      options({ token: TOKEN, credentialFailureLimit: { points: 2, durationSeconds: 60 } }),
    );
    try {
      for (const authorization of [`Bearer ${TOKEN}x`, 'Basic abc'])
        expect((await post('/decode', { payloads: [] }, { authorization }, counting)).status).toBe(401);
      const spent = await post('/decode', { payloads: [] }, { authorization: `Bearer ${TOKEN}` }, counting);
      expect(spent.status).toBe(429);
      expect(spent.body.error.code).toBe('RATE_LIMITED');
      expect(Number(spent.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await counting.close();
    }
  });

  it('is required in production: without one the codec server does not start', () => {
    const production = loadConfig({ ...productionSecrets(), LOG_LEVEL: 'silent' });
    expect(() => codecServerOptionsOf(production, logger)).toThrow(/CODEC_SERVER_TOKEN: not set/);
    const token = loadConfig({ ...productionSecrets(), CODEC_SERVER_TOKEN: randomBytes(24).toString('hex') });
    expect(codecServerOptionsOf(token, logger).token).toBe(token.codecServer.token);
    expect(() => loadConfig({ ...productionSecrets(), CODEC_SERVER_TOKEN: 'x'.repeat(40) })).toThrow(
      /CODEC_SERVER_TOKEN: made of fewer than 8 distinct values/,
    );
  });

  it('comes from CODEC_SERVER_TOKEN', () => {
    expect(testConfig({ CODEC_SERVER_TOKEN: TOKEN }).codecServer.token).toBe(TOKEN);
    expect(() => loadConfig({ CODEC_SERVER_TOKEN: 'short' })).toThrow(/CODEC_SERVER_TOKEN/);
  });
});

describe('where it listens', () => {
  it('binds to 127.0.0.1 by default: CODEC_SERVER_HOST and startCodecServer both', async () => {
    expect(loadConfig({}).codecServer).toMatchObject({ host: '127.0.0.1', port: 8234, token: null });
    const { host: _host, ...withoutHost } = options();
    const running = await startCodecServer(withoutHost);
    try {
      expect(running.server.address()).toMatchObject({ address: '127.0.0.1' });
      expect(running.url).toBe(`http://127.0.0.1:${running.port}`);
    } finally {
      await running.close();
    }
  });

  it("refuses the API's port, and origins that are not origins", () => {
    expect(() => loadConfig({ PORT: '4000', CODEC_SERVER_PORT: '4000' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: '4000', CODEC_SERVER_PORT: '4000' })).toThrow(/CODEC_SERVER_PORT: must not be/);
    expect(loadConfig({ CODEC_SERVER_PORT: '0' }).codecServer.port).toBe(0);
    expect(() => loadConfig({ CODEC_SERVER_ORIGINS: '*' })).toThrow(/CODEC_SERVER_ORIGINS/);
    expect(() => loadConfig({ CODEC_SERVER_ORIGINS: 'http://ui.example.com/path' })).toThrow(/not an origin/);
    expect(
      loadConfig({ CODEC_SERVER_ORIGINS: 'https://ui.example.com, http://127.0.0.1:8233/' }).codecServer,
    ).toMatchObject({
      allowedOrigins: ['https://ui.example.com', 'http://127.0.0.1:8233'],
    });
  });
});
