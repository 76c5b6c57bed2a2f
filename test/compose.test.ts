/**
 * docker-compose.temporal.yml and the Dockerfile, checked without a Docker engine: the files are
 * parsed and compared with what the app actually reads (src/config/index.ts), so adding a
 * configuration variable, or renaming a service, without updating compose fails here.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/index.js';
import { paymentProviders } from '../src/payments/providers/registry.js';
import {
  SERVICE_CONFIG_VARIABLES as CONFIG_VARIABLES,
  SERVICE_OPTIONAL_CONFIG_VARIABLES as OPTIONAL_CONFIG_VARIABLES,
} from '../toolkit/provider-config.js';
import { ORDER_SEARCH_ATTRIBUTES } from '../src/model/order-workflow.js';
import { productionSecrets } from './helpers/env.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const composePath = join(repoRoot, 'docker-compose.temporal.yml');
const dockerfilePath = join(repoRoot, 'Dockerfile');

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | { target?: number | string; published?: number | string })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
  deploy?: { replicas?: number };
  container_name?: string;
  profiles?: string[];
}

/**
 * Resolves compose interpolation as `docker compose` does with none of the variables set:
 * `${VAR:-default}` / `${VAR-default}` give the default, `${VAR}` / `$VAR` give '', `$$` gives `$`.
 */
function interpolate(value: string, vars: Record<string, string | undefined> = {}): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (
      match,
      name: string | undefined,
      colon: string | undefined,
      op: string | undefined,
      arg: string | undefined,
      bare: string | undefined,
    ) => {
      if (match === '$$') return '$';
      if (bare) return vars[bare] ?? '';
      const current = vars[name!];
      const missing = colon ? current === undefined || current === '' : current === undefined;
      if (op === '-') return missing ? (arg ?? '') : current!;
      if (op === '?') {
        if (missing) throw new Error(`compose requires ${name}: ${arg}`);
        return current!;
      }
      return current ?? '';
    },
  );
}

function interpolateDeep<T>(value: T, vars: Record<string, string | undefined>): T {
  if (typeof value === 'string') return interpolate(value, vars) as T;
  if (Array.isArray(value)) return value.map((item) => interpolateDeep(item, vars)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, vars)])) as T;
  }
  return value;
}

const composeText = readFileSync(composePath, 'utf8');
// merge: compose resolves YAML merge keys (`<<: *anchor`), so the test does too.
/** Every secret compose requires (`${VAR:?…}`), as an operator's .env gives them: random, so production takes them. */
const { NODE_ENV: _production, MYSQL_URL: _url, ...ownSecrets } = productionSecrets();
const password = () => randomBytes(16).toString('hex');
const COMPOSE_SECRETS: Record<string, string> = {
  ...ownSecrets,
  CODEC_SERVER_TOKEN: randomBytes(24).toString('hex'),
  MYSQL_PASSWORD: password(),
  MYSQL_ROOT_PASSWORD: password(),
  TEMPORAL_DB_PASSWORD: password(),
};
const parsedCompose = parse(composeText, { merge: true }) as { services: Record<string, Service> };
const compose = interpolateDeep(parsedCompose, COMPOSE_SECRETS);
const services = compose.services;

function service(name: string): Service {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.temporal.yml has no service "${name}"`);
  return found;
}

function envOf(name: string): Record<string, string> {
  const env = service(name).environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => {
        const at = entry.indexOf('=');
        return at < 0 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** Ports as { published, target }, from short ("8233:8080", "127.0.0.1:3000:3000/tcp") or long syntax. */
function portsOf(name: string): { published?: number; target: number }[] {
  return (service(name).ports ?? []).map((port) => {
    if (typeof port === 'object') {
      return {
        published: port.published === undefined ? undefined : Number(port.published),
        target: Number(port.target),
      };
    }
    const parts = String(port)
      .replace(/\/(tcp|udp)$/, '')
      .split(':');
    const target = Number(parts.at(-1));
    return parts.length >= 2 ? { published: Number(parts.at(-2)), target } : { target };
  });
}

function dependsOn(name: string): Record<string, string | undefined> {
  const deps = service(name).depends_on ?? {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((dep) => [dep, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([dep, spec]) => [dep, spec?.condition ?? 'service_started']));
}

function commandText(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(' ') : (value ?? '');
}

/** Where each address must point: the compose service and the port it listens on in the network. */
const LISTENERS = {
  'temporal-frontend': { port: 7233, image: /^temporalio\/server:/ },
  mysql: { port: 3306, image: /^mysql:8/ },
} as const;

/** The Redis Cluster's nodes: every one of them is in REDIS_URL. */
const REDIS_NODES = ['redis-1', 'redis-2', 'redis-3', 'redis-4', 'redis-5', 'redis-6'] as const;
const TEMPORAL_SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;

const APP_SERVICES = ['api', 'worker'] as const;

describe('docker-compose.temporal.yml', () => {
  const keys = [...CONFIG_VARIABLES];

  it('knows the configuration variables of src/config/index.ts', () => {
    // If the list were empty, every check below would pass vacuously.
    expect(keys.length).toBeGreaterThanOrEqual(12);
    expect(keys).toEqual(
      expect.arrayContaining([
        'PORT',
        'TEMPORAL_ADDRESS',
        'TEMPORAL_NAMESPACE',
        'TEMPORAL_TASK_QUEUE',
        'REDIS_URL',
        'MYSQL_URL',
        'PAYMENT_WINDOW',
        'WEBHOOK_SECRET',
        'JWT_SECRET',
        'ADMIN_TOKEN',
        'AUTH_DEV_LOGIN',
        'LOG_LEVEL',
      ]),
    );
  });

  it.each([...APP_SERVICES, 'migrate'])(
    'sets every variable the app reads for %s, and the app accepts them',
    (name) => {
      const env = envOf(name);
      // Optional credentials must be wired (so a deployment can set them) but may be empty.
      const missing = keys.filter(
        (key) => env[key] === undefined || (env[key] === '' && !OPTIONAL_CONFIG_VARIABLES.includes(key)),
      );
      expect(missing, `unset in ${name}`).toEqual([]);
      // The same values (defaults of the ${VAR:-default} interpolations) pass the app's own validation.
      // …the payment providers' variables too (their registry reads them).
      expect(() => paymentProviders(loadConfig(env))).not.toThrow();
    },
  );

  it('shares one environment block between api, worker and migrate', () => {
    expect(envOf('worker')).toEqual(envOf('api'));
    expect(envOf('migrate')).toEqual(envOf('api'));
    expect(composeText).toMatch(/^x-app-env:\s*&app-env\b/m);
  });

  it('runs the codec server on the app environment, listening on every interface of its container only', () => {
    const { CODEC_SERVER_HOST: host, ...rest } = envOf('codec-server');
    const { CODEC_SERVER_HOST: _appHost, ...app } = envOf('api');
    expect(rest).toEqual(app);
    expect(host).toBe('0.0.0.0');
    expect(commandText(service('codec-server').command)).toBe('npm run codec-server');
    const build = service('codec-server').build;
    expect(resolve(repoRoot, typeof build === 'string' ? build : (build?.context ?? ''), 'Dockerfile')).toBe(
      dockerfilePath,
    );
  });

  it("points the Web UI's codec endpoint at the codec server, published on the host's loopback only, never on the API's port", () => {
    const config = loadConfig(envOf('codec-server'));
    const port = config.codecServer.port;
    expect(port).toBeGreaterThan(0);
    // Published on 127.0.0.1 alone: it decrypts for whoever reaches it.
    const published = service('codec-server').ports ?? [];
    expect(published).toHaveLength(1);
    expect(String(published[0])).toMatch(/^127\.0\.0\.1:/);
    expect(portsOf('codec-server')).toEqual([{ published: port, target: port }]);
    expect(port).not.toBe(Number(envOf('api').PORT));
    for (const other of ['lb', 'temporal-ui']) expect(portsOf(other).map((p) => p.published)).not.toContain(port);
    // The browser calls it from the UI's pages: the endpoint is the published address, and the UI's origin is allowed.
    const ui = envOf('temporal-ui');
    const endpoint = new URL(ui.TEMPORAL_CODEC_ENDPOINT ?? '');
    expect(['localhost', '127.0.0.1']).toContain(endpoint.hostname);
    expect(Number(endpoint.port)).toBe(port);
    for (const { published: uiPort } of portsOf('temporal-ui')) {
      expect(config.codecServer.allowedOrigins).toContain(`http://localhost:${uiPort}`);
      expect(config.codecServer.allowedOrigins).toContain(`http://127.0.0.1:${uiPort}`);
    }
    // No sign-in in front of this UI: no access token to pass (the UI sends one over https only), no cookies.
    expect(ui.TEMPORAL_CODEC_PASS_ACCESS_TOKEN).toBe('false');
    expect(ui.TEMPORAL_CODEC_INCLUDE_CREDENTIALS).toBe('false');
  });

  it('takes every secret from the environment with no default, and does not start without each one', () => {
    // A secret may default to empty (optional), never to a value: a published default is a deployment's hole.
    const defaulted = [...composeText.matchAll(/\$\{([A-Z_]*(?:SECRET|TOKEN|PASSWORD|KEYS?)\b[A-Z_]*):?-([^}]+)\}/g)];
    expect(defaulted.filter((match) => !['true', 'false'].includes(match[2]!)).map((match) => match[1])).toEqual([]);
    expect(Object.keys(COMPOSE_SECRETS).length).toBeGreaterThanOrEqual(9);
    for (const name of Object.keys(COMPOSE_SECRETS)) {
      const { [name]: _missing, ...others } = COMPOSE_SECRETS;
      expect(() => interpolateDeep(parsedCompose, others), name).toThrow(`compose requires ${name}`);
    }
  });

  it("publishes Temporal's frontend and the Web UI on the host's loopback only: neither asks who calls", () => {
    for (const name of ['temporal-frontend', 'temporal-ui']) {
      const ports = service(name).ports ?? [];
      expect(ports.length, name).toBeGreaterThan(0);
      for (const port of ports) expect(String(port), name).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it('points the addresses at compose services and the ports they listen on', () => {
    for (const name of APP_SERVICES) {
      const config = loadConfig(envOf(name));

      const [temporalHost, temporalPort] = config.temporal.address.split(':');
      expect(temporalHost).toBe('temporal-frontend');
      expect(Number(temporalPort)).toBe(LISTENERS['temporal-frontend'].port);

      // REDIS_URL lists every node of the Redis Cluster, so the app uses its Cluster client.
      expect(config.redisCluster).toBe(true);
      const redisUrls = config.redisUrl.split(',').map((url) => new URL(url));
      expect(redisUrls.map((url) => url.protocol)).toEqual(REDIS_NODES.map(() => 'redis:'));
      expect(redisUrls.map((url) => url.hostname)).toEqual([...REDIS_NODES]);
      for (const url of redisUrls) expect(Number(url.port)).toBe(6379);

      const mysql = new URL(config.mysqlUrl);
      expect(mysql.protocol).toBe('mysql:');
      expect(mysql.hostname).toBe('mysql');
      expect(Number(mysql.port)).toBe(LISTENERS.mysql.port);
      // The credentials and database are the ones the mysql service creates.
      const mysqlEnv = envOf('mysql');
      expect(decodeURIComponent(mysql.username)).toBe(mysqlEnv.MYSQL_USER);
      expect(decodeURIComponent(mysql.password)).toBe(mysqlEnv.MYSQL_PASSWORD);
      expect(mysql.pathname.slice(1)).toBe(mysqlEnv.MYSQL_DATABASE);
    }
    for (const [name, listener] of Object.entries(LISTENERS)) {
      expect(service(name).image).toMatch(listener.image);
    }
  });

  it('publishes the API on its PORT through the nginx load balancer over its replicas, and not on a port the Temporal UI uses', () => {
    const port = Number(envOf('api').PORT);
    // The API replicas publish nothing (they would collide); lb publishes the API's port.
    expect(portsOf('api')).toEqual([]);
    expect(service('api').deploy?.replicas).toBeGreaterThanOrEqual(2);
    expect(service('lb').image).toMatch(/^nginx:/);
    const lbPorts = portsOf('lb');
    expect(lbPorts.map((p) => p.published)).toEqual([port]);
    expect(composeText).toContain(`server api:${port}`);
    expect(dependsOn('lb').api).toBe('service_healthy');
    const uiPublished = portsOf('temporal-ui').map((p) => p.published);
    for (const p of lbPorts) expect(uiPublished).not.toContain(p.published);
    // The health check probes the port the API listens on.
    expect(commandText(service('api').healthcheck?.test)).toContain(`127.0.0.1:${port}/healthz`);
  });

  it('publishes the Temporal UI on 8233, aimed at temporal-frontend:7233', () => {
    expect(service('temporal-ui').image).toMatch(/^temporalio\/ui:/);
    expect(portsOf('temporal-ui')).toContainEqual({ published: 8233, target: 8080 });
    expect(envOf('temporal-ui').TEMPORAL_ADDRESS).toBe(`temporal-frontend:${LISTENERS['temporal-frontend'].port}`);
  });

  it('runs Temporal as four services of one pinned temporalio/server image on PostgreSQL, its schema set up by a job, never auto-setup', () => {
    for (const [name, spec] of Object.entries(services)) expect(spec.image ?? '', name).not.toMatch(/auto-setup/);
    const images = new Set(TEMPORAL_SERVICES.map((name) => service(`temporal-${name}`).image));
    expect(images.size).toBe(1);
    const [image] = [...images];
    expect(image).toMatch(/^temporalio\/server:1\.\d+\.\d+$/);
    for (const name of TEMPORAL_SERVICES) {
      const env = envOf(`temporal-${name}`);
      expect(env.TEMPORAL_SERVICES).toBe(name);
      expect(env.DB).toBe('postgres12');
      expect(env.POSTGRES_SEEDS).toBe('postgresql');
      expect(Number(env.NUM_HISTORY_SHARDS)).toBeGreaterThanOrEqual(4);
    }
    expect(service('postgresql').image).toMatch(/^postgres:16/);
    // The schema tool is the server's own release: schema and server must match.
    expect(service('temporal-schema').image).toBe(image!.replace('temporalio/server:', 'temporalio/admin-tools:'));
    expect(commandText(service('temporal-schema').command)).toMatch(
      /update-schema -d \/etc\/temporal\/schema\/postgresql\/v12\/temporal\/versioned/,
    );
    expect(commandText(service('temporal-schema').command)).toMatch(
      /update-schema -d \/etc\/temporal\/schema\/postgresql\/v12\/visibility\/versioned/,
    );
    expect(dependsOn('temporal-schema').postgresql).toBe('service_healthy');
    expect(dependsOn('temporal-history')['temporal-schema']).toBe('service_completed_successfully');
    // The namespace the app uses is created by the admin job (temporalio/server creates none).
    const script = commandText(service('temporal-admin-tools').command);
    expect(script).toContain('temporal operator namespace create');
    expect(envOf('temporal-admin-tools').TEMPORAL_NAMESPACE).toBe(envOf('api').TEMPORAL_NAMESPACE);
  });

  it('registers the custom search attributes as Keyword', () => {
    const script = commandText(service('temporal-admin-tools').command);
    expect(script).toContain('temporal operator search-attribute create');
    expect(script).toMatch(/--type Keyword/);
    for (const attribute of ['OrderSku']) expect(script).toContain(attribute);
  });

  it('registers every search attribute the workflow code defines, with its type', () => {
    const script = commandText(service('temporal-admin-tools').command);
    expect(ORDER_SEARCH_ATTRIBUTES.length).toBeGreaterThan(0);
    for (const { name, type } of ORDER_SEARCH_ATTRIBUTES) {
      expect(script, `search attribute ${name} is not registered`).toMatch(new RegExp(`\\b${name}\\b`));
      // The script registers its list as Keyword; any other type needs its own --type.
      if (type !== 'KEYWORD') expect(script.toLowerCase()).toContain(`--type ${String(type).toLowerCase()}`);
    }
  });

  it.each(APP_SERVICES)('starts %s only after Temporal, MySQL, Redis and the migration', (name) => {
    const deps = dependsOn(name);
    expect(deps['temporal-frontend']).toBe('service_healthy');
    expect(deps.mysql).toBe('service_healthy');
    expect(deps['redis-cluster-init']).toBe('service_completed_successfully');
    expect(deps.migrate).toBe('service_completed_successfully');
    expect(dependsOn('migrate').mysql).toBe('service_healthy');
  });

  it.each([...APP_SERVICES, 'migrate'])('builds %s from the repository Dockerfile', (name) => {
    const build = service(name).build;
    const context = typeof build === 'string' ? build : build?.context;
    const dockerfile = (typeof build === 'object' && build.dockerfile) || 'Dockerfile';
    expect(context, `${name} has no build context`).toBeDefined();
    expect(resolve(repoRoot, context!, dockerfile)).toBe(dockerfilePath);
  });

  it('runs each app process with its npm script', () => {
    expect(commandText(service('api').command)).toBe('npm run api');
    expect(commandText(service('worker').command)).toBe('npm run worker');
    expect(commandText(service('migrate').command)).toBe('npm run migrate');
  });

  it('runs the worker as scalable replicas with no published port', () => {
    const worker = service('worker');
    expect(worker.deploy?.replicas).toBeGreaterThanOrEqual(2);
    expect(worker.ports ?? []).toEqual([]);
    expect(worker.container_name).toBeUndefined();
    expect(service('api').container_name).toBeUndefined();
  });

  it("keeps the previous release's workers as their own service during a deploy: a rainbow of two", () => {
    const [current, previous] = [service('worker'), service('worker-previous')];
    // Each release's image by its tag; the previous one is run, never built from this checkout.
    expect(current.image).toBe('flash-checkout:latest'); // ${RELEASE:-latest}
    expect(previous.image).toBe('flash-checkout:previous'); // ${PREVIOUS_RELEASE:-previous}
    expect(previous.build).toBeUndefined();
    // Only when asked for (`--profile previous`), and otherwise the same workers: one deployment, two builds.
    expect(previous.profiles).toEqual(['previous']);
    expect(current.profiles).toBeUndefined();
    const { image: _i, build: _b, profiles: _p, ...shared } = current;
    const { image: _pi, profiles: _pp, ...sharedPrevious } = previous;
    expect(sharedPrevious).toEqual(shared);
  });

  it('runs a Redis Cluster of six nodes with the append-only file, created by a job', () => {
    for (const name of REDIS_NODES) {
      expect(service(name).image).toMatch(/^redis:7/);
      const command = commandText(service(name).command);
      expect(command).toMatch(/--appendonly yes/);
      expect(command).toMatch(/--appendfsync always/);
      expect(command).toMatch(/--cluster-enabled yes/);
      expect(dependsOn('redis-cluster-init')[name]).toBe('service_healthy');
    }
    expect(commandText(service('redis-cluster-init').command)).toMatch(
      /redis-cli --cluster create .* --cluster-replicas 1/,
    );
  });
});

describe('Dockerfile', () => {
  const text = existsSync(dockerfilePath) ? readFileSync(dockerfilePath, 'utf8') : '';

  it('exists', () => {
    expect(existsSync(dockerfilePath)).toBe(true);
  });

  /** The Dockerfile's stages by name: `FROM … AS build` up to the next FROM. */
  const stage = (name: string): string => {
    const stages = text.split(/^(?=FROM )/m);
    return stages.find((s) => new RegExp(`^FROM \\S+ AS ${name}\\s*$`, 'm').test(s)) ?? '';
  };
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };

  it('compiles the app with its workflow bundle in a build stage; the runtime takes dist/ as it is', () => {
    // `npm run build` writes dist/workflow-bundle.js, which a worker run from dist/ runs (test/build.test.ts).
    expect(stage('build')).toMatch(/^RUN npm run build\s*$/m);
    expect(stage('runtime')).toMatch(/^COPY --from=build \/app\/dist \/app\/dist\s*$/m);
    expect(stage('runtime')).not.toContain('WORKFLOW_BUNDLE_PATH');
  });

  it('runs on node 24 bookworm-slim, as a non-root user, with the API as default command', () => {
    expect(text).toContain('node:24-bookworm-slim');
    const users = [...text.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
    expect(users.at(-1)).toBeDefined();
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    expect(text).toMatch(/^CMD \["npm", "run", "api"\]\s*$/m);
  });

  it('runs compiled JavaScript: production dependencies only, no TypeScript sources, no tsx', () => {
    for (const script of ['api', 'worker', 'migrate', 'codec-server'])
      expect(pkg.scripts[script], script).toMatch(/^node dist\/\S+\.js$/);
    expect(pkg.dependencies?.tsx).toBeUndefined();
    expect(pkg.devDependencies?.tsx).toBeDefined();
    const runtime = stage('runtime');
    expect(runtime).toMatch(/npm ci --omit=dev/);
    // Only named folders are copied into the runtime image, never the whole context (src/, tests).
    expect(runtime).not.toMatch(/^COPY \. /m);
    expect(runtime).not.toMatch(/^COPY .*\bsrc\b/m);
  });

  it('keeps host node_modules and local data out of the build context', () => {
    const ignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim());
    expect(ignore).toContain('node_modules');
    expect(ignore).toContain('.data');
  });
});
