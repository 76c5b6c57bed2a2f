/**
 * src/order-events/endpoint-secrets.ts (no stack): endpoints' signing secrets are Standard Webhooks `whsec_` secrets
 * of 32 random bytes, and what MySQL stores is sealed: it opens only under the same key for the same endpoint,
 * unaltered.
 */
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { EndpointSecretBox, generateEndpointSecret } from '../src/order-events/endpoint-secrets.js';

const KEY = 'unit-test-events-secret-key-0123456789';
const ENDPOINT = 'ep_01ARZ3NDEKTSV4RRFFQ69G5FAV';

/** The bytes a `whsec_` secret stands for. */
const decoded = (secret: string) => Buffer.from(secret.slice('whsec_'.length), 'base64');

describe('generateEndpointSecret', () => {
  it('is whsec_ and the base64 of at least 24 random bytes, new each time', () => {
    const secrets = Array.from({ length: 50 }, generateEndpointSecret);
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
      expect(decoded(secret).length).toBeGreaterThanOrEqual(24);
      // Canonical base64: the text is exactly what its bytes encode to.
      expect(`whsec_${decoded(secret).toString('base64')}`).toBe(secret);
    }
    expect(new Set(secrets).size).toBe(secrets.length);
  });

  it('is a secret the standardwebhooks library signs and verifies with', () => {
    const secret = generateEndpointSecret();
    const body = '{"id":"x","type":"order.paid"}';
    const timestamp = new Date();
    const hook = new Webhook(secret);
    const headers = {
      'webhook-id': 'msg_1',
      'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
      'webhook-signature': hook.sign('msg_1', timestamp, body),
    };
    expect(hook.verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(generateEndpointSecret()).verify(body, headers)).toThrow();
  });
});

describe('EndpointSecretBox', () => {
  const box = new EndpointSecretBox(KEY);
  const secret = generateEndpointSecret();
  const sealed = box.seal(ENDPOINT, secret);

  it('opens what it sealed; the box holds neither the secret nor its bytes; each seal is new', () => {
    expect(box.open(ENDPOINT, sealed)).toBe(secret);
    expect(new EndpointSecretBox(KEY).open(ENDPOINT, sealed)).toBe(secret);
    expect(sealed.includes(Buffer.from(secret, 'utf8'))).toBe(false);
    expect(sealed.includes(decoded(secret))).toBe(false);
    expect(sealed.toString('latin1')).not.toContain(secret.slice('whsec_'.length, 20));
    const again = box.seal(ENDPOINT, secret);
    expect(again.equals(sealed)).toBe(false);
    expect(box.open(ENDPOINT, again)).toBe(secret);
    // Fits webhook_endpoints.secret_box (VARBINARY(255)).
    expect(sealed.length).toBeLessThanOrEqual(255);
  });

  it('does not open for another endpoint: a box copied onto another row is refused', () => {
    expect(() => box.open('ep_01ARZ3NDEKTSV4RRFFQ69G5FAW', sealed)).toThrow();
    expect(() => box.open('', sealed)).toThrow();
  });

  it('does not open under another key', () => {
    expect(() => new EndpointSecretBox(`${KEY}-other`).open(ENDPOINT, sealed)).toThrow();
  });

  it('does not open once altered anywhere (format, nonce, tag, ciphertext) or cut short', () => {
    // Offsets into each part: 0 the format byte, 1-12 the nonce, 13-28 the tag, then the ciphertext.
    for (const offset of [0, 1, 12, 13, 28, 29, sealed.length - 1]) {
      const altered = Buffer.from(sealed);
      altered[offset] = altered[offset]! ^ 0x01;
      expect(() => box.open(ENDPOINT, altered), `byte ${offset} flipped`).toThrow();
    }
    for (const length of [0, 1, 28, 29, sealed.length - 1])
      expect(() => box.open(ENDPOINT, sealed.subarray(0, length)), `cut to ${length} bytes`).toThrow();
    expect(() => box.open(ENDPOINT, Buffer.concat([sealed, Buffer.from([0])])), 'a byte added').toThrow();
  });
});

describe('EndpointSecretBox over a list of keys (EVENTS_SECRET_KEY=<id>=<key>,…)', () => {
  const k1 = { id: 'k1', secret: `${KEY}-one` };
  const k2 = { id: 'k2', secret: `${KEY}-two` };
  const secret = generateEndpointSecret();

  it('seals under the first, naming it; opens under any listed; a box of an unlisted key names the key, not its text', () => {
    const rotating = new EndpointSecretBox([k2, k1]);
    const sealedByK1 = new EndpointSecretBox([k1]).seal(ENDPOINT, secret);
    const sealedByK2 = rotating.seal(ENDPOINT, secret);
    expect(rotating.open(ENDPOINT, sealedByK1)).toBe(secret);
    expect(rotating.open(ENDPOINT, sealedByK2)).toBe(secret);
    expect([rotating.isCurrent(sealedByK2), rotating.isCurrent(sealedByK1)]).toEqual([true, false]);
    const message = (() => {
      try {
        new EndpointSecretBox([k1]).open(ENDPOINT, sealedByK2);
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(message).toBe('an endpoint secret sealed under key "k2", which is not one of EVENTS_SECRET_KEY');
    expect(message).not.toContain(k2.secret);
  });

  it('opens a box sealed before keys had ids under the key it was, now listed with one', () => {
    const unnamed = new EndpointSecretBox(KEY).seal(ENDPOINT, secret);
    const listed = new EndpointSecretBox([k2, { id: 'was-unnamed', secret: KEY }]);
    expect(listed.open(ENDPOINT, unnamed)).toBe(secret);
    expect(listed.isCurrent(unnamed)).toBe(false);
    expect(() => new EndpointSecretBox([k2]).open(ENDPOINT, unnamed)).toThrow(/no listed key opens/);
  });

  it('a box relabelled with another listed id, or moved to another endpoint, does not open', () => {
    const rotating = new EndpointSecretBox([k2, k1]);
    const sealed = rotating.seal(ENDPOINT, secret);
    const relabelled = Buffer.from(sealed);
    relabelled[3] = '1'.charCodeAt(0); // [2][2]['k']['2'] → "k1"
    expect(() => rotating.open(ENDPOINT, relabelled)).toThrow();
    expect(() => rotating.open('ep_01ARZ3NDEKTSV4RRFFQ69G5FAW', sealed)).toThrow();
  });
});
