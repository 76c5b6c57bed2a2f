/** The payload codec's rules (src/infra/payload-codec.ts) and its configuration, without a server. */
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type PayloadCodecKey } from '../src/config/index.js';
import { createLogger } from '../src/infra/logger.js';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING } from '../src/infra/payload-codec.js';
import { productionSecrets } from './helpers/env.js';

const key = (id: string): PayloadCodecKey => ({ id, secret: randomBytes(32) });
const plain = (value: unknown): Payload => defaultPayloadConverter.toPayload(value);
const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? []).toString('utf8');
const shopper = { userId: 'shopper-4711', clientSecret: 'pi_123_secret_abc' };

describe('AesGcmPayloadCodec', () => {
  it('encrypts with the first key, names it and the original encoding, and decodes back to the same payload', async () => {
    const codec = new AesGcmPayloadCodec([key('k2'), key('k1')]);
    const [sealed] = await codec.encode([plain(shopper)]);
    expect(text(sealed!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(sealed!.metadata!['encryption-key-id'])).toBe('k2');
    expect(text(sealed!.metadata!['encryption-original-encoding'])).toBe('json/plain');
    expect(text(sealed!.data)).not.toContain('shopper-4711');
    const [opened] = await codec.decode([sealed!]);
    expect(defaultPayloadConverter.fromPayload(opened!)).toEqual(shopper);
    expect(codec.counts.encrypted.get('k2')).toBe(1);
  });

  it('uses a fresh nonce per payload: the same value never encrypts the same twice', async () => {
    const codec = new AesGcmPayloadCodec([key('k1')]);
    const [a, b] = await codec.encode([plain(shopper), plain(shopper)]);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
    expect(Buffer.from(a!.data!).subarray(0, 12).equals(Buffer.from(b!.data!).subarray(0, 12))).toBe(false);
  });

  it('after a rotation a payload of the old key still decodes; a key no longer listed fails loudly', async () => {
    const old = key('k1');
    const [sealed] = await new AesGcmPayloadCodec([old]).encode([plain(shopper)]);
    const rotated = new AesGcmPayloadCodec([key('k2'), old]);
    expect(defaultPayloadConverter.fromPayload((await rotated.decode([sealed!]))[0]!)).toEqual(shopper);
    await expect(new AesGcmPayloadCodec([key('k2')]).decode([sealed!])).rejects.toThrow(
      /key "k1".*not one of PAYLOAD_CODEC_KEYS/,
    );
  });

  it('refuses a tampered payload: altered data, a key id or an original encoding swapped', async () => {
    const codec = new AesGcmPayloadCodec([key('k1')]);
    const [sealed] = await codec.encode([plain(shopper)]);
    const flipped = Buffer.from(sealed!.data!);
    flipped[20] = flipped[20]! ^ 1;
    await expect(codec.decode([{ ...sealed!, data: flipped }])).rejects.toThrow(/failed authentication/);
    const relabelled = {
      ...sealed!,
      metadata: { ...sealed!.metadata, 'encryption-original-encoding': Buffer.from('binary/plain') },
    };
    await expect(codec.decode([relabelled])).rejects.toThrow(/failed authentication/);
    await expect(codec.decode([{ ...sealed!, data: flipped.subarray(0, 10) }])).rejects.toThrow(/truncated/);
  });

  it('decrypt-only writes plain payloads and reads both (the release before encryption)', async () => {
    const k1 = key('k1');
    const [sealed] = await new AesGcmPayloadCodec([k1]).encode([plain(shopper)]);
    const reader = new AesGcmPayloadCodec([k1], 'decrypt-only');
    const [written] = await reader.encode([plain(shopper)]);
    expect(text(written!.data)).toContain('shopper-4711');
    const decoded = await reader.decode([sealed!, written!]);
    expect(decoded.map((payload) => defaultPayloadConverter.fromPayload(payload))).toEqual([shopper, shopper]);
  });

  it('require encrypts, reads encrypted payloads, and refuses a plain one (the last step of turning it on)', async () => {
    const codec = new AesGcmPayloadCodec([key('k1')], 'require');
    const [sealed] = await codec.encode([plain(shopper)]);
    expect(text(sealed!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(defaultPayloadConverter.fromPayload((await codec.decode([sealed!]))[0]!)).toEqual(shopper);
    await expect(codec.decode([sealed!, plain(shopper)])).rejects.toThrow(
      'a payload not encrypted (encoding "json/plain"), refused: PAYLOAD_CODEC_MODE=require',
    );
    // The mode before it reads the same plain payload as it is: what `require` closes.
    expect(await new AesGcmPayloadCodec([key('k1')]).decode([plain(shopper)])).toEqual([plain(shopper)]);
  });
});

describe('PAYLOAD_CODEC_KEYS', () => {
  // Empty: not set.
  const production = { ...productionSecrets(), PAYLOAD_CODEC_KEYS: '' };
  const k = (id: string) => `${id}=${randomBytes(32).toString('base64')}`;

  it('lists keys, the first encrypting', () => {
    const config = loadConfig({ PAYLOAD_CODEC_KEYS: `${k('2026-11')}, ${k('2026-08')}` });
    expect(config.payloadCodec.keys.map((entry) => entry.id)).toEqual(['2026-11', '2026-08']);
    expect(config.payloadCodec.mode).toBe('encrypt');
  });

  it('outside production, a checkout generates its own key once (.data/payload-codec-keys)', () => {
    const first = loadConfig({}).payloadCodec.keys;
    expect(first).toHaveLength(1);
    expect(first[0]!.id).toMatch(/^local-/);
    expect(loadConfig({}).payloadCodec.keys[0]!.secret.equals(first[0]!.secret)).toBe(true);
  });

  it('refuses a short key, a repeated id, and in production a missing or local key', () => {
    expect(() => loadConfig({ PAYLOAD_CODEC_KEYS: `k1=${randomBytes(16).toString('base64')}` })).toThrow(/32 bytes/);
    expect(() => loadConfig({ PAYLOAD_CODEC_KEYS: `${k('k1')},${k('k1')}` })).toThrow(/listed twice/);
    expect(() => loadConfig(production)).toThrow(/PAYLOAD_CODEC_KEYS: not set/);
    expect(() => loadConfig({ ...production, PAYLOAD_CODEC_KEYS: k('local-ab12') })).toThrow(ConfigError);
    expect(loadConfig({ ...production, PAYLOAD_CODEC_KEYS: k('2026-11') }).payloadCodec.keys).toHaveLength(1);
  });
});

describe('logs', () => {
  it('never show the codec keys of a logged configuration', () => {
    const lines: string[] = [];
    const config = loadConfig({ PAYLOAD_CODEC_KEYS: `k1=${randomBytes(32).toString('base64')}` });
    const logger = createLogger({ logLevel: 'info' }, 'test', { write: (line: string) => lines.push(line) });
    logger.info({ config }, 'configured');
    logger.info({ payloadCodec: config.payloadCodec }, 'codec');
    const secret = config.payloadCodec.keys[0]!.secret;
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).not.toContain(secret.toString('base64'));
      expect(line).not.toContain(secret.toString('hex'));
      expect(line).not.toMatch(/"data":\[/);
    }
  });
});

describe('sealed texts (a client secret in MySQL)', () => {
  it('seal under the first key, open under any listed, only where they were sealed', () => {
    const k1 = key('k1');
    const sealed = new AesGcmPayloadCodec([k1]).seal('pi_1_secret_x', 'payment_intents.client_secret:pi_1');
    expect(sealed).toMatch(/^enc1:k1:/);
    expect(sealed).not.toContain('pi_1_secret_x');
    const rotated = new AesGcmPayloadCodec([key('k2'), k1]);
    expect(rotated.open(sealed, 'payment_intents.client_secret:pi_1')).toBe('pi_1_secret_x');
    expect(() => rotated.open(sealed, 'payment_intents.client_secret:pi_2')).toThrow(/failed authentication/);
    // Written before encryption: read as it is.
    expect(rotated.open('pi_0_secret_y', 'payment_intents.client_secret:pi_0')).toBe('pi_0_secret_y');
  });

  it('seal in every mode: decrypt-only writes plain payloads to Temporal, never a plain secret to MySQL', () => {
    for (const mode of ['encrypt', 'decrypt-only', 'require'] as const)
      expect(new AesGcmPayloadCodec([key('k1')], mode).seal('pi_1_secret_x', 'c'), mode).toMatch(/^enc1:k1:/);
  });
});
