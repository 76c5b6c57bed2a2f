/**
 * The configuration rules that need no server: the production refusal of development secrets and
 * of the dev login, the relations between deadlines, and the rate-limit, proxy and drain settings
 * (docs/operations.md, "Configuration").
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, deadlineRelationProblems, loadConfig } from '../src/config/index.js';
import { temporalConnectionSettings } from '../src/infra/temporal-connection.js';
import { productionSecrets } from './helpers/env.js';

const OWN_SECRETS = productionSecrets();

function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('loadConfig accepted the configuration');
}

describe('NODE_ENV=production', () => {
  it('refuses a missing secret and the dev login, naming each variable', () => {
    const message = refusal({ NODE_ENV: 'production', AUTH_DEV_LOGIN: 'true' });
    expect(message).toMatch(/^Refusing to start with NODE_ENV=production/);
    for (const name of [
      'WEBHOOK_SECRET',
      'JWT_SECRET',
      'ADMIN_TOKEN',
      'EVENTS_SECRET_KEY',
      'EVENTS_CUSTOMER_SECRET',
      'PAYLOAD_CODEC_KEYS',
    ])
      expect(message).toContain(`${name}: not set`);
    expect(message).toContain('AUTH_DEV_LOGIN: must be false');
  });

  it('names only the variable still at its development default', () => {
    const message = refusal({ NODE_ENV: 'production', ...OWN_SECRETS, JWT_SECRET: 'dev-jwt-secret-change-me-please' });
    expect(message).toContain('JWT_SECRET: published in this repository');
    for (const name of ['WEBHOOK_SECRET', 'ADMIN_TOKEN', 'AUTH_DEV_LOGIN']) expect(message).not.toContain(`${name}:`);
  });

  it('refuses what the compose file, the replay fixture and the tests published, by fingerprint, never printing it', () => {
    const published = {
      WEBHOOK_SECRET: 'compose-webhook-secret-change-me',
      JWT_SECRET: 'compose-jwt-secret-change-me-please',
      ADMIN_TOKEN: 'compose-admin-token-change-me',
      EVENTS_SECRET_KEY: 'compose-events-secret-key-change-me-please',
      EVENTS_READ_TOKEN: 'prod-admin-token-0123456789',
      MYSQL_URL: 'mysql://flash:flash@mysql:3306/flash',
      STRIPE_WEBHOOK_SECRET: 'whsec_chaos',
    };
    const keys = {
      'compose-change-me': 'W5+H5duRfD3NcTfdX8ehfCuezh97P88/nZFDBwND85E=',
      'renamed-fixture': 'FNIoJzbLrUh8W42TfOhGe/NPWTUekaoMbetJPeHFGxE=',
    };
    const PAYLOAD_CODEC_KEYS = Object.entries(keys)
      .map(([id, key]) => `${id}=${key}`)
      .join(',');
    const message = refusal({ ...OWN_SECRETS, ...published, PAYLOAD_CODEC_KEYS });
    for (const name of ['WEBHOOK_SECRET', 'JWT_SECRET', 'ADMIN_TOKEN', 'EVENTS_SECRET_KEY', 'EVENTS_READ_TOKEN'])
      expect(message).toContain(`${name}: published in this repository`);
    expect(message).toContain('MYSQL_URL: its secret is published');
    for (const id of Object.keys(keys)) expect(message).toContain(`key "${id}" is published in this repository`);
    for (const value of [...Object.values(published), ...Object.values(keys)].map((v) =>
      v.replace(/^mysql.*$/, 'flash:flash'),
    ))
      expect(message).not.toContain(value);
  });

  it('refuses a weak secret: short, one character, a run, a pattern, a key of one repeated byte', () => {
    const weak = {
      WEBHOOK_SECRET: 'x'.repeat(40),
      // Built here: a literal after a secret's name would be published, and refused as that first.
      JWT_SECRET: Array.from({ length: 36 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(''),
      ADMIN_TOKEN: randomBytes(12).toString('hex'),
      EVENTS_SECRET_KEY: ['a', 'b', '1', '2'].join('').repeat(10),
    };
    const message = refusal({
      ...OWN_SECRETS,
      ...weak,
      PAYLOAD_CODEC_KEYS: `zero=${Buffer.alloc(32).toString('base64')},ones=${Buffer.alloc(32, 1).toString('base64')}`,
    });
    expect(message).toContain('WEBHOOK_SECRET: made of fewer than 8 distinct values');
    expect(message).toContain('JWT_SECRET: a run or a repeated pattern');
    expect(message).toContain('ADMIN_TOKEN: shorter than 32 characters');
    expect(message).toContain('EVENTS_SECRET_KEY: made of fewer than 8 distinct values');
    for (const id of ['zero', 'ones']) expect(message).toContain(`key "${id}" is made of fewer than 8 distinct values`);
  });

  it('a mistyped PAYLOAD_CODEC_KEYS entry is refused without printing the key in it', () => {
    const key = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';
    const short = 'MDEyMzQ1Njc4OWFiY2RlZg==';
    for (const [keys, named] of [
      [key, 'entry 1'],
      [`k1:${key}`, 'entry 1'],
      [`ok=${key},${short}`, 'entry 2'],
      [`k2=${short}`, 'key "k2"'],
    ] as const) {
      const message = refusal({ NODE_ENV: 'production', ...OWN_SECRETS, PAYLOAD_CODEC_KEYS: keys });
      expect(message, keys).toContain(`PAYLOAD_CODEC_KEYS: ${named}`);
      for (const secret of [key, short]) expect(message, keys).not.toContain(secret.slice(0, 12));
    }
  });

  it('EVENTS_SECRET_KEY: one key as before, or a list with ids (the first seals); a refusal names a key, never shows it', () => {
    const [one, two] = [randomBytes(24).toString('hex'), randomBytes(24).toString('hex')];
    expect(loadConfig({ EVENTS_SECRET_KEY: one }).webhookDelivery.secretKeys).toEqual([{ id: '', secret: one }]);
    expect(loadConfig({ EVENTS_SECRET_KEY: `k2=${two},k1=${one}` }).webhookDelivery.secretKeys).toEqual([
      { id: 'k2', secret: two },
      { id: 'k1', secret: one },
    ]);
    // One base64 key with its padding is one key, not an id and a value.
    const padded = randomBytes(22).toString('base64');
    expect(padded).toMatch(/==$/);
    expect(loadConfig({ EVENTS_SECRET_KEY: padded }).webhookDelivery.secretKeys).toEqual([{ id: '', secret: padded }]);
    const short = two.slice(0, 10);
    for (const [value, named] of [
      [`k2=${two},${padded}`, 'entry 2 (not shown)'],
      [`k2=${short},k1=${one}`, 'key "k2"'],
      [`k2=${two},${one}`, 'entry 2 (not shown)'],
      [`k1=${two},k1=${one}`, 'key id "k1" is listed twice'],
    ] as const) {
      const message = refusal({ EVENTS_SECRET_KEY: value });
      expect(message, value).toContain(`EVENTS_SECRET_KEY: ${named}`);
      for (const secret of [one, two, short, padded.slice(0, 12)]) expect(message, value).not.toContain(secret);
    }
    // In production each listed key must be strong on its own.
    const weak = ['a', 'b', 'c', 'd'].join('').repeat(10);
    expect(refusal({ ...OWN_SECRETS, EVENTS_SECRET_KEY: `k2=${two},k1=${weak}` })).toContain(
      'EVENTS_SECRET_KEY: key "k1": made of fewer than 8 distinct values',
    );
  });

  it('refuses AUTH_DEV_LOGIN=true (or 1) even with secrets of its own', () => {
    for (const value of ['true', '1'])
      expect(refusal({ NODE_ENV: 'production', ...OWN_SECRETS, AUTH_DEV_LOGIN: value })).toMatch(
        /AUTH_DEV_LOGIN: must be false/,
      );
  });

  it('starts with secrets of its own and the dev login off', () => {
    const config = loadConfig({ NODE_ENV: 'production', ...OWN_SECRETS, AUTH_DEV_LOGIN: 'false' });
    expect(config.nodeEnv).toBe('production');
    expect(config.jwtSecret).toBe(OWN_SECRETS.JWT_SECRET);
    expect(config.authDevLogin).toBe(false);
  });

  it('leaves development and test alone, and refuses a NODE_ENV it does not know', () => {
    expect(loadConfig({}).nodeEnv).toBe('development');
    expect(loadConfig({ NODE_ENV: 'test', AUTH_DEV_LOGIN: 'true' }).authDevLogin).toBe(true);
    expect(refusal({ NODE_ENV: 'prod' })).toContain('NODE_ENV');
  });
});

describe('relations between deadlines', () => {
  const DEADLINES_REFUSAL = /^Refusing to start with settings that do not fit together:/;

  it('accepts the defaults (CHECKOUT_DEADLINE=2s, REDIS_TIMEOUT=500ms, CHECKOUT_MAX_WAIT=10s, RESERVATION_GRACE=60s)', () => {
    const config = loadConfig({});
    expect([
      config.deadlines.checkoutMs,
      config.deadlines.redisMs,
      config.checkoutMaxWaitSeconds,
      config.reservationGraceMs,
    ]).toEqual([2_000, 500, 10, 60_000]);
    expect(deadlineRelationProblems(config)).toEqual([]);
  });

  it('refuses CHECKOUT_DEADLINE=500ms with REDIS_TIMEOUT=500ms, naming both variables and their values', () => {
    const message = refusal({
      CHECKOUT_DEADLINE: '500ms',
      REDIS_TIMEOUT: '500ms',
      CHECKOUT_START_BUDGET: '200ms',
      CLOCK_SKEW_MARGIN: '200ms',
    });
    expect(message).toMatch(DEADLINES_REFUSAL);
    expect(message).toContain(
      'CHECKOUT_DEADLINE: must be greater than REDIS_TIMEOUT + CHECKOUT_START_BUDGET + CLOCK_SKEW_MARGIN + 100ms = 1s ' +
        '(CHECKOUT_DEADLINE=500ms, REDIS_TIMEOUT=500ms, CHECKOUT_START_BUDGET=200ms, CLOCK_SKEW_MARGIN=200ms)',
    );
    expect(message).not.toContain('RESERVATION_GRACE');
  });

  it('CHECKOUT_DEADLINE must be greater than REDIS_TIMEOUT + CHECKOUT_START_BUDGET + CLOCK_SKEW_MARGIN + 100 ms: equal is refused, 1 ms more is accepted', () => {
    const rest = { CHECKOUT_START_BUDGET: '200ms', CLOCK_SKEW_MARGIN: '200ms' };
    expect(refusal({ ...rest, CHECKOUT_DEADLINE: '1000ms', REDIS_TIMEOUT: '500ms' })).toContain(
      '+ CLOCK_SKEW_MARGIN + 100ms = 1s',
    );
    expect(loadConfig({ ...rest, CHECKOUT_DEADLINE: '1001ms', REDIS_TIMEOUT: '500ms' }).deadlines.checkoutMs).toBe(
      1_001,
    );
    expect(refusal({ ...rest, CHECKOUT_DEADLINE: '2s', REDIS_TIMEOUT: '1500ms' })).toContain(
      '(CHECKOUT_DEADLINE=2s, REDIS_TIMEOUT=1500ms,',
    );
    expect(loadConfig({ ...rest, CHECKOUT_DEADLINE: '2s', REDIS_TIMEOUT: '1499ms' }).deadlines.redisMs).toBe(1_499);
    // The defaults of the other two: 250 ms each.
    expect(refusal({ CHECKOUT_DEADLINE: '1100ms', REDIS_TIMEOUT: '500ms' })).toContain('= 1100ms');
    expect(loadConfig({ CHECKOUT_DEADLINE: '1101ms', REDIS_TIMEOUT: '500ms' }).deadlines.checkoutMs).toBe(1_101);
  });

  it('RESERVATION_GRACE must be at least CHECKOUT_MAX_WAIT + CHECKOUT_DEADLINE: 1 ms less is refused, equal is accepted', () => {
    // The defaults' wait and deadline: 10 s + 2 s.
    const message = refusal({ RESERVATION_GRACE: '11999ms' });
    expect(message).toMatch(DEADLINES_REFUSAL);
    expect(message).toContain(
      'RESERVATION_GRACE: must be at least CHECKOUT_MAX_WAIT + CHECKOUT_DEADLINE = 12s (RESERVATION_GRACE=11999ms, CHECKOUT_MAX_WAIT=10s, CHECKOUT_DEADLINE=2s)',
    );
    expect(message).not.toContain('CHECKOUT_DEADLINE: ');
    expect(loadConfig({ RESERVATION_GRACE: '12s' }).reservationGraceMs).toBe(12_000);
    expect(refusal({ RESERVATION_GRACE: '5499ms', CHECKOUT_MAX_WAIT: '4s', CHECKOUT_DEADLINE: '1500ms' })).toContain(
      '= 5500ms (RESERVATION_GRACE=5499ms,',
    );
    expect(
      loadConfig({ RESERVATION_GRACE: '5500ms', CHECKOUT_MAX_WAIT: '4s', CHECKOUT_DEADLINE: '1500ms' })
        .reservationGraceMs,
    ).toBe(5_500);
  });

  it('counts CHECKOUT_MAX_WAIT=0 as no wait, and CHECKOUT_MAX_WAIT in the whole seconds a checkout waits', () => {
    expect(loadConfig({ CHECKOUT_MAX_WAIT: '0', RESERVATION_GRACE: '2s' }).reservationGraceMs).toBe(2_000);
    expect(refusal({ CHECKOUT_MAX_WAIT: '0', RESERVATION_GRACE: '1999ms' })).toContain(
      '(RESERVATION_GRACE=1999ms, CHECKOUT_MAX_WAIT=0s, CHECKOUT_DEADLINE=2s)',
    );
    // 1500ms is applied as a 1 s wait (Prefer: wait=N is in whole seconds).
    expect(loadConfig({ CHECKOUT_MAX_WAIT: '1500ms', RESERVATION_GRACE: '3s' }).checkoutMaxWaitSeconds).toBe(1);
    expect(refusal({ CHECKOUT_MAX_WAIT: '2s', RESERVATION_GRACE: '3s' })).toContain(
      'RESERVATION_GRACE: must be at least CHECKOUT_MAX_WAIT + CHECKOUT_DEADLINE = 4s',
    );
  });

  it('lists every broken relation in one refusal, one line each', () => {
    const message = refusal({
      CHECKOUT_DEADLINE: '500ms',
      REDIS_TIMEOUT: '500ms',
      CHECKOUT_MAX_WAIT: '10s',
      RESERVATION_GRACE: '2s',
    });
    const lines = message.split('\n');
    expect(lines[0]).toMatch(DEADLINES_REFUSAL);
    expect(lines.slice(1).map((line) => line.trim().split(':')[0])).toEqual(['CHECKOUT_DEADLINE', 'RESERVATION_GRACE']);
  });

  it('is a pure function of the configuration, for callers that build one', () => {
    const config = loadConfig({});
    expect(deadlineRelationProblems({ ...config, deadlines: { ...config.deadlines, checkoutMs: 1_000 } })).toHaveLength(
      1,
    );
    expect(deadlineRelationProblems({ ...config, reservationGraceMs: 11_999 })).toHaveLength(1);
    expect(deadlineRelationProblems({ ...config, checkoutMaxWaitSeconds: 0, reservationGraceMs: 2_000 })).toEqual([]);
    expect(deadlineRelationProblems(config)).toEqual([]);
  });
});

describe('rate limits, proxy and drain settings', () => {
  it('has flash-sale defaults: 10 checkouts per 10 s per shopper, 20 logins a minute and 100 webhooks a second per IP', () => {
    const config = loadConfig({});
    expect(config.rateLimits).toEqual({
      checkout: { points: 10, durationSeconds: 10 },
      login: { points: 20, durationSeconds: 60 },
      webhook: { points: 100, durationSeconds: 1 },
    });
    expect(config.trustProxy).toBe(false);
    expect(config.trustProxyHops).toBe(1);
    expect(config.shutdownDrainMs).toBe(5_000);
  });

  it('reads "<points>/<duration>", and "0" or "off" as no limit', () => {
    const config = loadConfig({ RATE_LIMIT_CHECKOUT: '5/2m', RATE_LIMIT_LOGIN: 'off', RATE_LIMIT_WEBHOOK: '0' });
    expect(config.rateLimits).toEqual({ checkout: { points: 5, durationSeconds: 120 }, login: null, webhook: null });
    expect(loadConfig({ RATE_LIMIT_CHECKOUT: '3 / 1 hour' }).rateLimits.checkout).toEqual({
      points: 3,
      durationSeconds: 3_600,
    });
  });

  it('refuses limits it cannot honour, naming the variable', () => {
    for (const bad of ['10', '10/0s', '0/10s', '10/1500ms', '10/500ms', 'ten/10s', '10/soon', '-1/10s']) {
      expect(refusal({ RATE_LIMIT_CHECKOUT: bad }), bad).toContain('RATE_LIMIT_CHECKOUT');
    }
  });

  it('reads TRUST_PROXY, TRUST_PROXY_HOPS and SHUTDOWN_DRAIN (zero allowed)', () => {
    const config = loadConfig({ TRUST_PROXY: 'true', TRUST_PROXY_HOPS: '2', SHUTDOWN_DRAIN: '0' });
    expect([config.trustProxy, config.trustProxyHops, config.shutdownDrainMs]).toEqual([true, 2, 0]);
    expect(loadConfig({ SHUTDOWN_DRAIN: '30s' }).shutdownDrainMs).toBe(30_000);
    expect(refusal({ SHUTDOWN_DRAIN: '-1s' })).toContain('SHUTDOWN_DRAIN');
    expect(refusal({ TRUST_PROXY_HOPS: '0' })).toContain('TRUST_PROXY_HOPS');
  });
});

describe('the connection to a managed Temporal', () => {
  it('is plain by default, TLS with an API key, mTLS with a certificate pair, and refuses half a pair', () => {
    expect(temporalConnectionSettings(loadConfig({}))).toEqual({ address: '127.0.0.1:7233' });
    expect(
      temporalConnectionSettings(loadConfig({ TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_TLS: 'true' })),
    ).toEqual({
      address: 'ns.acct.tmprl.cloud:7233',
      tls: {},
    });
    // An API key implies TLS: Temporal Cloud never takes a key over a plain connection.
    expect(
      temporalConnectionSettings(
        loadConfig({ TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233', TEMPORAL_API_KEY: 'key-123' }),
      ),
    ).toEqual({
      address: 'eu-west-1.aws.api.temporal.io:7233',
      tls: true,
      apiKey: 'key-123',
    });
    // TEMPORAL_TLS=false (compose's default) does not send a key in clear: TLS stays on.
    const keyed = loadConfig({
      TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233',
      TEMPORAL_API_KEY: 'key-123',
      TEMPORAL_TLS: 'false',
    });
    expect(temporalConnectionSettings(keyed).tls).toEqual({});
    const dir = mkdtempSync(join(tmpdir(), 'flash-tls-'));
    writeFileSync(join(dir, 'client.pem'), 'CERT');
    writeFileSync(join(dir, 'client.key'), 'KEY');
    const mtls = temporalConnectionSettings(
      loadConfig({ TEMPORAL_TLS_CERT_PATH: join(dir, 'client.pem'), TEMPORAL_TLS_KEY_PATH: join(dir, 'client.key') }),
    );
    const bytes = (text: string) => new TextEncoder().encode(text);
    expect(mtls.tls).toEqual({ clientCertPair: { crt: bytes('CERT'), key: bytes('KEY') } });
    // The SDK's own names for the pair work as well.
    const sdkNames = {
      TEMPORAL_TLS_CLIENT_CERT_PATH: join(dir, 'client.pem'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: join(dir, 'client.key'),
    };
    expect(temporalConnectionSettings(loadConfig(sdkNames)).tls).toEqual(mtls.tls);
    expect(refusal({ TEMPORAL_TLS_CERT_PATH: join(dir, 'client.pem') })).toContain('TEMPORAL_TLS_KEY_PATH');
  });

  it('reads a profile of temporal.toml as the SDK and the CLI do, under the TEMPORAL_* variables', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flash-profile-'));
    const file = join(dir, 'temporal.toml');
    writeFileSync(
      file,
      [
        '[profile.default]',
        'address = "127.0.0.1:7999"',
        '[profile.cloud]',
        'address = "ns.acct.tmprl.cloud:7233"',
        'namespace = "ns.acct"',
        'api_key = "key-from-file"',
        '[profile.cloud.grpc_meta]',
        'x-team = "checkout"',
      ].join('\n'),
    );
    expect(loadConfig({ TEMPORAL_CONFIG_FILE: file }).temporal).toMatchObject({
      address: '127.0.0.1:7999',
      namespace: 'default',
    });
    const cloud = loadConfig({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' });
    expect(cloud.temporal).toMatchObject({ address: 'ns.acct.tmprl.cloud:7233', namespace: 'ns.acct' });
    expect(temporalConnectionSettings(cloud)).toEqual({
      address: 'ns.acct.tmprl.cloud:7233',
      tls: true,
      apiKey: 'key-from-file',
      metadata: { 'x-team': 'checkout' },
    });
    // A variable wins over the file.
    const overridden = loadConfig({
      TEMPORAL_CONFIG_FILE: file,
      TEMPORAL_PROFILE: 'cloud',
      TEMPORAL_NAMESPACE: 'other',
    });
    expect(overridden.temporal.namespace).toBe('other');
    expect(refusal({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'nope' })).toContain("Profile 'nope' not found");
  });

  it('in production refuses a published API key in the temporal.toml profile, as in TEMPORAL_API_KEY', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flash-profile-'));
    const file = join(dir, 'temporal.toml');
    // A value this repository publishes (the compose file's admin token): known to anyone who reads it.
    const published = ['compose', 'admin', 'token', 'change', 'me'].join('-');
    writeFileSync(
      file,
      ['[profile.default]', 'address = "ns.acct.tmprl.cloud:7233"', `api_key = "${published}"`].join('\n'),
    );
    const production = { NODE_ENV: 'production', ...OWN_SECRETS, TEMPORAL_CONFIG_FILE: file };
    const message = refusal(production);
    expect(message).toContain('TEMPORAL_API_KEY: its secret is published in this repository');
    expect(message).not.toContain(published);
    // The variable wins over the file: a key of the operator's own there is accepted.
    expect(
      loadConfig({ ...production, TEMPORAL_API_KEY: randomBytes(24).toString('hex') }).temporal.apiKey,
    ).toBeDefined();
  });
});

describe('worker versioning names', () => {
  it('takes letters, digits, - and _ for the deployment and build, and refuses what a visibility query would quote', () => {
    const config = loadConfig({ WORKER_DEPLOYMENT_NAME: 'flash_orders-2', WORKER_BUILD_ID: 'b-1d8eca09' });
    expect(config.temporal.versioning).toMatchObject({ deploymentName: 'flash_orders-2', buildId: 'b-1d8eca09' });
    // The default deployment name is the task queue with its dots made dashes.
    expect(loadConfig({ TEMPORAL_TASK_QUEUE: 'shop.orders' }).temporal.versioning?.deploymentName).toBe('shop-orders');
    expect(refusal({ WORKER_BUILD_ID: "x' OR 'a'='a" })).toContain('WORKER_BUILD_ID');
    expect(refusal({ WORKER_DEPLOYMENT_NAME: 'orders.v2' })).toContain('WORKER_DEPLOYMENT_NAME');
    expect(refusal({ WORKER_DEPLOYMENT_NAME: 'orders:v2' })).toContain('WORKER_DEPLOYMENT_NAME');
    expect(refusal({ WORKER_BUILD_ID: '__internal' })).toContain('WORKER_BUILD_ID');
    expect(refusal({ TEMPORAL_TASK_QUEUE: "orders' OR 'a'='a" })).toContain('TEMPORAL_TASK_QUEUE');
  });

  it("takes the Worker Controller's names (`<namespace>/<name>`, an image tag's build id) and leaves it the promoting", () => {
    // As the controller sets them on each version's pods (temporalio/temporal-worker-controller).
    const controlled = loadConfig({
      TEMPORAL_DEPLOYMENT_NAME: 'shop/flash-worker',
      TEMPORAL_WORKER_BUILD_ID: 'v1.4.2-5f8d9c',
    });
    expect(controlled.temporal.versioning).toEqual({
      deploymentName: 'shop/flash-worker',
      buildId: 'v1.4.2-5f8d9c',
      promote: 'by-rollout',
    });
    // In production too: a worker under the controller never makes itself current, not even the first build.
    expect(
      loadConfig({
        ...productionSecrets(),
        TEMPORAL_DEPLOYMENT_NAME: 'shop/flash-worker',
        TEMPORAL_WORKER_BUILD_ID: 'b7',
      }).temporal.versioning?.promote,
    ).toBe('by-rollout');
    // The project's own names say the same, or the start is refused.
    const both = { WORKER_BUILD_ID: 'v1.4.2-5f8d9c', TEMPORAL_WORKER_BUILD_ID: 'v1.4.2-5f8d9c' };
    expect(loadConfig(both).temporal.versioning?.buildId).toBe('v1.4.2-5f8d9c');
    expect(refusal({ ...both, WORKER_BUILD_ID: 'other' })).toContain(
      'WORKER_BUILD_ID: differs from TEMPORAL_WORKER_BUILD_ID',
    );
    expect(refusal({ TEMPORAL_DEPLOYMENT_NAME: 'shop.flash' })).toContain('TEMPORAL_DEPLOYMENT_NAME');
    // Without the controller's build id, who promotes is as before.
    expect(loadConfig({ TEMPORAL_DEPLOYMENT_NAME: 'shop/flash' }).temporal.versioning?.promote).toBe('on-start');
  });
});
