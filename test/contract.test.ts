/**
 * The served OpenAPI document read literally, as a contract tester reads it, against the running
 * API on the real stack (Temporal dev server with the production worker, Redis, MariaDB):
 *  - every constraint an operation declares on its path, query and header parameters and its JSON
 *    body (bounds, lengths, patterns, formats, enums, constants, types, required fields, no other
 *    fields, an array's items, the schema of an encoded value) yields values at the bound and just
 *    past it, from the schema itself and its `examples`. The document (ajv, JSON Schema 2020-12, formats checked)
 *    judges each request and the API must agree: one the document accepts is not refused as
 *    invalid input (any answer but 400, 401 or 500 is fine, e.g. 404 for an unknown order), one it
 *    refuses is answered 400 with the stable code the operation declares, in the error shape; a
 *    path parameter past its bound names nothing, so 404 with the operation's not-found code;
 *  - a query parameter the document does not declare changes nothing;
 *  - every operation is visited, and the ones without any constraint are named below;
 *  - on every path of the document, each method it does not declare is 405 with `Allow`.
 * Nothing here names a field: a constraint added to a schema is exercised by the next run, and one
 * the API does not enforce, or a refusal the document does not declare, fails it.
 */
import { METHODS, request } from 'node:http';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterAll, describe, expect, it } from 'vitest';
import Stripe from 'stripe';
import { signWebhook } from '../toolkit/sign-webhook.js';
import { API_TEST_ENV, TEST_ADMIN_TOKEN, startTestApp } from './helpers/app.js';
import { httpAt } from './helpers/http.js';

// ajv-formats is CommonJS with a default export; under NodeNext its callable is `.default`.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Schema {
  $ref?: string;
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  prefixItems?: Schema[];
  items?: boolean | Schema;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  enum?: Json[];
  const?: Json;
  allOf?: Schema[];
  examples?: Json[];
  default?: Json;
  contentEncoding?: string;
  contentMediaType?: string;
  contentSchema?: Schema;
  [keyword: string]: unknown;
}

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema: Schema;
}

interface Media {
  schema?: Schema;
  examples?: Record<string, unknown>;
}

interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, Media> };
  security?: Record<string, string[]>[];
  responses: Record<string, { content?: Record<string, Media> }>;
}

interface SecurityScheme {
  type: string;
  in?: string;
  name?: string;
}

interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; securitySchemes: Record<string, SecurityScheme> };
}

const CONTRACT_STRIPE_SECRET = 'whsec_contract';
const app = await startTestApp('contract', {
  ...API_TEST_ENV,
  LOG_LEVEL: 'silent',
  // Hundreds of requests from one address and a few shoppers: what is judged is each answer to
  // its input, not the budgets (test/rate-limit.test.ts has those).
  RATE_LIMIT_LOGIN: 'off',
  RATE_LIMIT_WEBHOOK: 'off',
  RATE_LIMIT_CHECKOUT: 'off',
  // Stripe's webhook is live with a secret of this file's (the API itself never calls Stripe).
  STRIPE_SECRET_KEY: 'sk_test_contract',
  STRIPE_WEBHOOK_SECRET: CONTRACT_STRIPE_SECRET,
});
afterAll(() => app.close());
const spec = (await httpAt('GET', `${app.api.url}/openapi.json`)).body as OpenApi;

/**
 * The operations the document declares without any constraint on their input: named, so that a new one is a decision.
 */
const UNCONSTRAINED = [
  'getLiveness',
  'getReadiness',
  'getHealth',
  'getLineDemoPage',
  'getDashboard',
  'getDevConfig',
  'getMetrics',
  'getOpenApiDocument',
  'getDocsPage',
  'adminWorkers',
  'adminDeployment',
  'adminListWebhookEndpoints',
];

/** Credentials per security scheme, so that validation is reached; a new scheme fails until it is taught here. */
const AUTHORIZATION: Record<string, (n: number) => Promise<string>> = {
  shopperJwt: async (n) => `Bearer ${await app.auth.issue(`contract-${n}`)}`,
  adminToken: async () => `Bearer ${TEST_ADMIN_TOKEN}`,
  // The events feed takes the admin token too.
  eventsToken: async () => `Bearer ${TEST_ADMIN_TOKEN}`,
};
/**
 * A header credential: its value for a raw body, the code a malformed one is refused with, and variants that must stay
 * valid.
 */
const HEADER_CREDENTIALS: Record<
  string,
  { value: (rawBody: string) => string; refusal: string; variants: [string, (real: string) => string][] }
> = {
  paymentSignature: {
    value: (rawBody) => signWebhook(app.config.webhookSecret, rawBody),
    refusal: 'INVALID_SIGNATURE',
    variants: [
      ['uppercase hex', (real) => real.replace(/v1=([0-9a-f]+)/g, (_, hex: string) => `v1=${hex.toUpperCase()}`)],
      ['a space after the comma', (real) => real.replace(',', ', ')],
      [
        'a stale v1 before the right one (a secret rotating)',
        (real) => real.replace(',v1=', `,v1=${'0'.repeat(64)},v1=`),
      ],
      ['an element of another scheme (ignored, as providers expect)', (real) => `${real},v0=${'ab'.repeat(32)}`],
    ],
  },
  stripeSignature: {
    value: (rawBody) => Stripe.webhooks.generateTestHeaderString({ payload: rawBody, secret: CONTRACT_STRIPE_SECRET }),
    refusal: 'INVALID_SIGNATURE',
    variants: [],
  },
};

// ---- the document as a judge ----------------------------------------------------------------------

const ajv = new Ajv2020({ strict: false });
addFormats(ajv);
// contentSchema is an annotation to ajv; here it is checked: the value decoded, then its schema.
ajv.removeKeyword('contentSchema');
ajv.addKeyword({
  keyword: 'contentSchema',
  schemaType: 'object',
  compile: (schema: Schema, parent: Schema) => {
    const inner = ajv.compile(schema);
    return (data: unknown) => {
      if (typeof data !== 'string') return true;
      const decoded = decodeContent(data, parent);
      return decoded !== undefined && (inner(decoded) as boolean);
    };
  },
});

function decodeContent(value: string, schema: Schema): Json | undefined {
  if (schema.contentEncoding !== 'base64url' || schema.contentMediaType !== 'application/json')
    throw new Error(
      `the contract test does not know the content ${schema.contentEncoding} ${schema.contentMediaType}: teach it`,
    );
  try {
    return JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Json;
  } catch {
    return undefined;
  }
}

const encodeContent = (value: Json): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

const validators = new Map<Schema, ValidateFunction>();
function conforms(schema: Schema, value: Json): boolean {
  let validate = validators.get(schema);
  if (!validate) {
    // `#/components/...` references resolve inside the same root.
    validate = ajv.compile({ allOf: [schema], components: spec.components });
    validators.set(schema, validate);
  }
  return validate(value) as boolean;
}

function resolved(schema: Schema): Schema {
  if (!schema.$ref) return schema;
  const target = spec.components.schemas[schema.$ref.replace('#/components/schemas/', '')];
  if (!target) throw new Error(`cannot resolve ${schema.$ref}`);
  const { $ref: _ref, ...siblings } = schema;
  return { ...resolved(target), ...siblings };
}

// ---- constraints -----------------------------------------------------------------------------------

/** One step into a value: a property, an item, or the value a string encodes. */
type Step = { key: string } | { index: number } | { content: Schema };
const OMIT: unique symbol = Symbol('omitted');
type Edit = Json | typeof OMIT;

/** Keywords that describe or structure a schema; every other keyword is a constraint this test must exercise. */
const STRUCTURE = new Set([
  '$ref',
  '$schema',
  'allOf',
  'properties',
  'prefixItems',
  'contentEncoding',
  'contentMediaType',
  'description',
  'examples',
  'default',
  'title',
  'id',
]);
const CONSTRAINTS = new Set([
  'type',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'enum',
  'const',
  'required',
  'additionalProperties',
  'items',
  'minItems',
  'maxItems',
  'contentSchema',
]);
/** Constraints whose accepted side is the valid request itself (the field present, typed, alone). */
const REFUSE_ONLY = new Set(['type', 'required', 'required parameter', 'additionalProperties', 'items']);

/** Where a constraint sits: a parameter or the body, and the steps into its value. */
interface Place {
  part: 'path' | 'query' | 'header' | 'body';
  name: string;
  steps: Step[];
}

interface Constraint {
  label: string;
  place: Place;
  keyword: string;
  value: unknown;
  schema: Schema;
  accepted: number;
  refused: number;
}

const placeLabel = (place: Place) =>
  `${place.part}${place.part === 'body' ? '' : ` ${place.name}`}${place.steps.map((step) => ('key' in step ? `.${step.key}` : 'index' in step ? `[${step.index}]` : '→decoded')).join('')}`;

/** Every constraint of `schema` and of the values it contains, at `place`. */
function constraintsOf(schema: Schema, place: Place): Constraint[] {
  const own = resolved(schema);
  const found: Constraint[] = [];
  for (const layer of [own, ...(own.allOf ?? []).map(resolved)]) {
    for (const [keyword, value] of Object.entries(layer)) {
      if (STRUCTURE.has(keyword)) continue;
      if (!CONSTRAINTS.has(keyword))
        throw new Error(`${placeLabel(place)}: the contract test does not know the keyword ${keyword}: teach it`);
      // A string on the wire cannot be anything but a string.
      if (keyword === 'type' && value === 'string' && place.part !== 'body' && place.steps.length === 0) continue;
      // An open object (a provider's event, its signature covering every field): nothing to refuse.
      if (keyword === 'additionalProperties' && isOpenSchema(value)) continue;
      // Every item of one schema: its constraints are exercised on the first item (below).
      if (keyword === 'items' && typeof value === 'object' && value !== null) continue;
      if (keyword === 'required' && Array.isArray(value)) {
        for (const name of value as string[]) found.push(constraint(place, 'required', name, own));
      } else found.push(constraint(place, keyword, value, own));
    }
  }
  for (const [key, property] of Object.entries(own.properties ?? {}))
    found.push(...constraintsOf(property, { ...place, steps: [...place.steps, { key }] }));
  own.prefixItems?.forEach((item, index) =>
    found.push(...constraintsOf(item, { ...place, steps: [...place.steps, { index }] })),
  );
  if (typeof own.items === 'object')
    found.push(...constraintsOf(own.items, { ...place, steps: [...place.steps, { index: 0 }] }));
  if (own.contentSchema)
    found.push(...constraintsOf(own.contentSchema, { ...place, steps: [...place.steps, { content: own }] }));
  return found;
}

function constraint(place: Place, keyword: string, value: unknown, schema: Schema): Constraint {
  return {
    label: `${placeLabel(place)} ${keyword} ${JSON.stringify(value)}`,
    place,
    keyword,
    value,
    schema,
    accepted: 0,
    refused: 0,
  };
}

// ---- values ----------------------------------------------------------------------------------------

let fresh = 0;

/**
 * A valid value for `schema`: its first example, constant or enum value, the lowest number or
 * shortest string it allows. Identifiers are made fresh where the schema allows it, so that one
 * request's effect (a sale created, a payment event recorded) does not turn the next into a conflict.
 */
function validValue(schema: Schema, label: string): Json {
  const own = resolved(schema);
  const example = own.examples?.[0];
  if (example !== undefined) {
    if (typeof example === 'string') {
      const unique = `${example}${++fresh}`;
      if (conforms(own, unique)) return unique;
    }
    return example;
  }
  if (own.const !== undefined) return own.const;
  if (own.enum?.length) return own.enum[0]!;
  if (own.type === 'object')
    return Object.fromEntries(
      (own.required ?? []).map((key) => [key, validValue(own.properties![key]!, `${label}.${key}`)]),
    );
  if (own.type === 'array' && own.prefixItems)
    return own.prefixItems.map((item, index) => validValue(item, `${label}[${index}]`));
  if (own.type === 'integer') return own.minimum ?? (own.exclusiveMinimum === undefined ? 0 : own.exclusiveMinimum + 1);
  if (own.type === 'string' && !own.pattern && !own.format && !own.contentSchema && !own.allOf)
    return 'a'.repeat(Math.max(own.minLength ?? 0, 1));
  throw new Error(`${label}: no value to start from: declare one in its schema's examples`);
}

function getAt(value: Json, steps: Step[]): Json {
  let current = value;
  for (const step of steps) {
    // An optional object left out of the valid request (a sale's `line`): its fields start from nothing.
    if ('key' in step) current = (current as Record<string, Json> | undefined)?.[step.key] as Json;
    else if ('index' in step) current = (current as Json[] | undefined)?.[step.index] as Json;
    else current = decodeContent(current as string, step.content)!;
  }
  return current;
}

function setAt(value: Json | undefined, steps: Step[], edit: Edit): Edit {
  const [step, ...rest] = steps;
  if (!step) return edit;
  if ('content' in step) {
    const inner = setAt(decodeContent(value as string, step.content)!, rest, edit);
    return encodeContent(inner === OMIT ? null : inner);
  }
  if ('key' in step) {
    const copy = { ...(value as Record<string, Json>) };
    const child = setAt(copy[step.key], rest, edit);
    if (child === OMIT) delete copy[step.key];
    else copy[step.key] = child;
    return copy;
  }
  // An optional array left out of the valid request (an endpoint's `eventTypes`): its items start from none.
  const copy = [...((value as Json[] | undefined) ?? [])];
  const child = setAt(copy[step.index], rest, edit);
  if (child === OMIT) copy.splice(step.index, 1);
  else copy[step.index] = child;
  return copy;
}

/** Strings near `example` that a pattern or format may or may not allow; the document judges each. */
function nearby(example: string): string[] {
  const digitRuns = [...example.matchAll(/\d+/g)].flatMap((match) =>
    [-1, 1].flatMap((delta) => {
      const number = Number(match[0]) + delta;
      if (number < 0) return [];
      const digits = String(number).padStart(match[0].length, '0');
      return [example.slice(0, match.index) + digits + example.slice(match.index + match[0].length)];
    }),
  );
  return [
    '',
    `${example} `,
    ` ${example}`,
    `${example}\n`,
    ' '.repeat(example.length),
    example.slice(0, -1),
    example + example.slice(-1),
    example.toLowerCase(),
    example.toUpperCase(),
    `~${example.slice(1)}`,
    `é${example.slice(1)}`,
    example.replaceAll(',', ', '),
    ...digitRuns,
  ].filter((candidate) => candidate !== example);
}

const fill = (base: Json, length: number) => (typeof base === 'string' && base ? [...base][0]! : 'a').repeat(length);

/** The values one constraint yields at its bound and just past it, as edits at the steps given. */
function candidatesOf(c: Constraint, base: Json): { steps: Step[]; edit: Edit }[] {
  const at = (edit: Edit): { steps: Step[]; edit: Edit } => ({ steps: c.place.steps, edit });
  const value = c.value;
  switch (c.keyword) {
    case 'minimum':
      return [at(value as number), at((value as number) - 1)];
    case 'exclusiveMinimum':
      return [at((value as number) + 1), at(value as number)];
    case 'maximum':
      return [at(value as number), at((value as number) + 1)];
    case 'exclusiveMaximum':
      return [at((value as number) - 1), at(value as number)];
    // Characters as JSON Schema counts them (code points), blanks included: a length is checked as sent.
    case 'minLength':
      return (value as number) > 0
        ? [fill(base, value as number), ' '.repeat(value as number), fill(base, (value as number) - 1)].map(at)
        : [];
    case 'maxLength':
      return [
        fill(base, value as number),
        fill(base, (value as number) + 1),
        '😀'.repeat(value as number),
        '😀'.repeat((value as number) + 1),
        ` ${fill(base, value as number)}`,
      ].map(at);
    case 'pattern':
    case 'format':
    case 'contentSchema': {
      const examples = (c.schema.examples ?? []).filter((example): example is string => typeof example === 'string');
      if (!examples.length) throw new Error(`${c.label}: declare examples in its schema`);
      return [...examples, ...examples.flatMap(nearby)].map(at);
    }
    case 'enum': {
      const first = String((value as Json[])[0]);
      return [...(value as Json[]), `${first}X`, first.toLowerCase()].map(at);
    }
    case 'const':
      return [at(value as Json), at(typeof value === 'string' ? `${value}X` : (value as number) + 1)];
    case 'type':
      return (
        {
          integer: c.place.part === 'body' || c.place.steps.length ? [1.5, '1'] : [1.5, 'abc'],
          number: ['1'],
          string: [1],
          boolean: ['true'],
          object: [[]],
          array: [{}],
        }[value as string] ?? []
      ).map(at);
    case 'required':
      return [{ steps: [...c.place.steps, { key: value as string }], edit: OMIT }];
    case 'required parameter':
      return [at(OMIT)];
    case 'additionalProperties':
      if (value !== false) throw new Error(`${c.label}: only additionalProperties: false is known here`);
      return [{ steps: [...c.place.steps, { key: 'contractUndeclared' }], edit: 1 }];
    case 'items':
      if (value !== false) throw new Error(`${c.label}: only items: false (after prefixItems) is known here`);
      return [at([...(base as Json[]), (base as Json[]).at(-1)!])];
    case 'minItems':
      return [at((base as Json[]).slice(0, value as number)), at((base as Json[]).slice(0, (value as number) - 1))];
    case 'maxItems': {
      const padded = (length: number) =>
        Array.from({ length }, (_, i) => (base as Json[])[Math.min(i, (base as Json[]).length - 1)]!);
      return [at(padded(value as number)), at(padded((value as number) + 1))];
    }
    default:
      throw new Error(`${c.label}: no candidates for ${c.keyword}`);
  }
}

// ---- requests ---------------------------------------------------------------------------------------

/**
 * A request in the document's terms: typed values per parameter, the body as JSON, a credential header transformed or
 * not.
 */
interface Request {
  path: Record<string, Json>;
  query: Record<string, Edit>;
  header: Record<string, Edit | ((real: string) => string)>;
  body: Json | undefined;
}

interface Answer {
  status: number;
  headers: Headers;
  body: { error?: { code?: string } } | string | undefined;
}

/** The operation as the test drives it: its parameters, body schema and credentials. */
class Driven {
  readonly params: Parameter[];
  readonly body: Schema | undefined;
  readonly schemes: string[];
  readonly credentialHeader: { name: string; scheme: string } | undefined;
  private shopper = 0;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly op: Operation,
  ) {
    this.params = op.parameters ?? [];
    if (this.params.some((param) => param.in === 'cookie'))
      throw new Error(`${op.operationId}: cookie parameters are not known here: teach the test`);
    const content = op.requestBody?.content;
    if (content && !content['application/json'])
      throw new Error(`${op.operationId}: a body other than JSON is not known here`);
    this.body = content?.['application/json']?.schema;
    this.schemes = (op.security ?? []).flatMap((requirement) => Object.keys(requirement));
    for (const scheme of this.schemes) {
      const declared = spec.components.securitySchemes[scheme];
      if (declared?.type === 'apiKey' && declared.in === 'header' && HEADER_CREDENTIALS[scheme])
        this.credentialHeader = { name: declared.name!, scheme };
      else if (!AUTHORIZATION[scheme])
        throw new Error(`${op.operationId}: no credential for the security scheme ${scheme}: teach the test`);
    }
  }

  constraints(): Constraint[] {
    return [
      ...this.params.flatMap((param) => [
        ...(param.required && param.in !== 'path'
          ? [
              constraint(
                { part: param.in as Place['part'], name: param.name, steps: [] },
                'required parameter',
                true,
                param.schema,
              ),
            ]
          : []),
        ...constraintsOf(param.schema, { part: param.in as Place['part'], name: param.name, steps: [] }),
      ]),
      ...(this.body ? constraintsOf(this.body, { part: 'body', name: 'body', steps: [] }) : []),
    ];
  }

  /** The valid request everything else is a variation of: every path and required parameter, the required body. */
  valid(): Request {
    const request: Request = {
      path: {},
      query: {},
      header: {},
      body: this.body ? validValue(this.body, 'body') : undefined,
    };
    for (const param of this.params) {
      if (param.in === 'path') request.path[param.name] = validValue(param.schema, `path ${param.name}`);
      else if (param.required && param.name !== this.credentialHeader?.name)
        request[param.in as 'query' | 'header'][param.name] = validValue(param.schema, param.name);
    }
    return request;
  }

  /** `request` with one value replaced (or removed, or added). */
  varied(request: Request, place: Place, steps: Step[], edit: Edit | ((real: string) => string)): Request {
    const copy: Request = {
      path: { ...request.path },
      query: { ...request.query },
      header: { ...request.header },
      body: request.body,
    };
    if (typeof edit === 'function') copy.header[place.name] = edit;
    else if (place.part === 'body') copy.body = setAt(copy.body, steps, edit) as Json;
    else {
      const values = copy[place.part] as Record<string, Edit>;
      const current =
        values[place.name] ?? (steps.length ? validValue(this.paramOf(place).schema, place.name) : undefined);
      values[place.name] = setAt(current as Json, steps, edit);
    }
    return copy;
  }

  paramOf(place: Place): Parameter {
    return this.params.find((param) => param.in === place.part && param.name === place.name)!;
  }

  /**
   * The request on the wire, or null when it cannot be sent as is (a header with a line break, a path segment that is
   * no segment).
   */
  async wire(
    request: Request,
  ): Promise<{ url: string; init: RequestInit; judged: Place | 'valid'; sentAs: string } | null> {
    const raw = request.body === undefined ? undefined : JSON.stringify(request.body);
    const headers: Record<string, string> = {};
    if (raw !== undefined) headers['content-type'] = 'application/json';
    for (const scheme of this.schemes)
      if (AUTHORIZATION[scheme]) headers.authorization = await AUTHORIZATION[scheme](++this.shopper);
    let invalid: Place | undefined;
    const judge = (place: Place, schema: Schema, value: Json) => {
      if (!invalid && !conforms(schema, value)) invalid = place;
    };
    let path = this.path;
    for (const param of this.params) {
      const place: Place = { part: param.in as Place['part'], name: param.name, steps: [] };
      if (param.in === 'path') {
        const value = String(request.path[param.name]);
        if (value === '' || value === '.' || value === '..') return null;
        judge(place, param.schema, request.path[param.name]!);
        path = path.replace(`{${param.name}}`, encodeURIComponent(value));
        continue;
      }
      let value = request[param.in as 'query' | 'header'][param.name];
      if (param.name === this.credentialHeader?.name) {
        const real = HEADER_CREDENTIALS[this.credentialHeader.scheme]!.value(raw ?? '');
        value = typeof value === 'function' ? value(real) : value === undefined ? real : value;
      }
      if (value === undefined || value === OMIT) {
        if (param.required && !invalid) invalid = place;
        continue;
      }
      if (typeof value === 'function') throw new Error('a transform on a parameter that is no credential');
      judge(place, param.schema, value);
      const text = String(value);
      if (param.in === 'header') {
        // What a header can carry as it is: Latin-1, no line breaks, nothing the parser trims at either end.
        if (!/^[\x20-\x7e\x80-\xff]*$/.test(text) || text !== text.trim()) return null;
        headers[param.name] = text;
      } else path += `${path.includes('?') ? '&' : '?'}${new URLSearchParams({ [param.name]: text }).toString()}`;
    }
    // A credential header the document does not declare as a parameter is still sent.
    if (this.credentialHeader && !this.params.some((param) => param.name === this.credentialHeader!.name))
      headers[this.credentialHeader.name] = HEADER_CREDENTIALS[this.credentialHeader.scheme]!.value(raw ?? '');
    if (this.body && request.body !== undefined)
      judge({ part: 'body', name: 'body', steps: [] }, this.body, request.body);
    for (const [name, value] of Object.entries(request.query)) {
      if (!this.params.some((param) => param.in === 'query' && param.name === name) && value !== OMIT)
        path += `${path.includes('?') ? '&' : '?'}${new URLSearchParams({ [name]: String(value) }).toString()}`;
    }
    return {
      url: `${app.api.url}${path}`,
      init: { method: this.method.toUpperCase(), headers, ...(raw === undefined ? {} : { body: raw }) },
      judged: invalid ?? 'valid',
      sentAs: [
        `${this.method.toUpperCase()} ${path}`,
        ...this.params
          .filter((param) => param.in === 'header' && headers[param.name] !== undefined)
          .map((param) => `${param.name}: ${headers[param.name]}`),
        raw ?? '',
      ]
        .join(' ')
        .slice(0, 240),
    };
  }

  /** The codes the operation declares for `status`. */
  declaredCodes(status: number): string[] {
    return Object.keys(this.op.responses[String(status)]?.content?.['application/json']?.examples ?? {});
  }
}

/** fetch, not the test client: the wire as a stranger sends it (any Latin-1 header byte the document allows). */
async function send(url: string, init: RequestInit): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: Answer['body'] = text || undefined;
  if ((response.headers.get('content-type') ?? '').includes('json') && text) body = JSON.parse(text) as Answer['body'];
  return { status: response.status, headers: response.headers, body };
}

const errorShape = (() => {
  let validate: ValidateFunction | undefined;
  return (body: unknown) =>
    (validate ??= ajv.compile({ $ref: '#/components/schemas/ApiError', components: spec.components }))(body) as boolean;
})();

const codeOf = (answer: Answer) => (typeof answer.body === 'object' ? answer.body.error?.code : undefined);

/** Not refused as invalid input: neither 400 nor 401 (the credentials are good), nor a crash. */
const accepted = (answer: Answer) => answer.status !== 400 && answer.status !== 401 && answer.status !== 500;

// ---- the walk ---------------------------------------------------------------------------------------

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
  HTTP_METHODS.flatMap((method) => (item[method] ? [new Driven(method, path, item[method])] : [])),
);
const visited = new Set<string>();
const unconstrained: string[] = [];

describe('every declared constraint holds at its bound and is refused just past it', () => {
  it.each(
    operations.map(
      (driven) => [`${driven.method.toUpperCase()} ${driven.path} (${driven.op.operationId})`, driven] as const,
    ),
  )('%s', async (_name, driven) => {
    visited.add(driven.op.operationId);
    const mismatches: string[] = [];
    // The valid request candidates are computed from; each is sent on a fresh one (new identifiers).
    const valid = driven.valid();

    /**
     * Sends `request` and holds the answer to the document's verdict; `refusedOnly`: a valid one is not judged (a
     * signed value changed).
     */
    const check = async (request: Request, what: string, c?: Constraint, refusedOnly = false) => {
      const wired = await driven.wire(request);
      if (!wired || (refusedOnly && wired.judged === 'valid')) return;
      const answer = await send(wired.url, wired.init);
      const said = `${answer.status} ${codeOf(answer) ?? ''}`.trim();
      if (wired.judged === 'valid') {
        if (c) c.accepted++;
        if (!accepted(answer))
          mismatches.push(`${what}: the document accepts ${wired.sentAs}; the API answered ${said}`);
        return;
      }
      if (c) c.refused++;
      const credential =
        driven.credentialHeader && wired.judged.part === 'header' && wired.judged.name === driven.credentialHeader.name;
      const status = wired.judged.part === 'path' ? 404 : 400;
      const codes =
        status === 404
          ? driven.declaredCodes(404)
          : [credential ? HEADER_CREDENTIALS[driven.credentialHeader!.scheme]!.refusal : 'INVALID_REQUEST'];
      const declared = driven.declaredCodes(status);
      if (
        answer.status !== status ||
        !codes.includes(codeOf(answer) ?? '') ||
        !declared.includes(codeOf(answer) ?? '') ||
        !errorShape(answer.body)
      )
        mismatches.push(
          `${what}: the document refuses ${wired.sentAs} (${placeLabel(wired.judged)}); the API answered ${said}, expected ${status} ${codes.join(' or ')} declared for ${status} (${declared.join(', ') || 'none'})`,
        );
    };

    await check(valid, 'the valid request');
    // A query parameter the document does not declare is no constraint.
    await check({ ...valid, query: { ...valid.query, contractUndeclared: '1' } }, 'an undeclared query parameter');

    const constraints = driven.constraints();
    if (constraints.length === 0) unconstrained.push(driven.op.operationId);
    for (const c of constraints) {
      const credential =
        c.place.part === 'header' && c.place.name === driven.credentialHeader?.name && c.place.steps.length === 0;
      if (credential && (c.keyword === 'pattern' || c.keyword === 'minLength' || c.keyword === 'maxLength')) {
        // The credential's value is signed: its variants must stay valid; any other change is judged only when the
        // document refuses it.
        const { variants } = HEADER_CREDENTIALS[driven.credentialHeader!.scheme]!;
        for (const [what, variant] of variants)
          await check(driven.varied(driven.valid(), c.place, [], variant), `${c.label} (${what})`, c);
        const real = HEADER_CREDENTIALS[driven.credentialHeader!.scheme]!.value(
          valid.body === undefined ? '' : JSON.stringify(valid.body),
        );
        for (const near of nearby(real))
          await check(
            driven.varied(driven.valid(), c.place, [], () => near),
            c.label,
            c,
            true,
          );
        continue;
      }
      const baseOfPart =
        c.place.part === 'body'
          ? valid.body
          : (valid[c.place.part][c.place.name] ?? validValue(driven.paramOf(c.place).schema, c.place.name));
      const base = getAt(baseOfPart as Json, c.place.steps);
      for (const { steps, edit } of candidatesOf(c, base))
        await check(driven.varied(driven.valid(), c.place, steps, edit), c.label, c);
    }
    for (const c of constraints) {
      if (c.refused === 0) mismatches.push(`${c.label}: no value past it could be sent`);
      if (c.accepted === 0 && !REFUSE_ONLY.has(c.keyword)) mismatches.push(`${c.label}: no value at it could be sent`);
    }
    expect(mismatches, `\n${mismatches.join('\n')}\n`).toEqual([]);
  });

  it('visited every operation of the document; those without constraints are the ones named', () => {
    expect([...visited].sort()).toEqual(operations.map((driven) => driven.op.operationId).sort());
    expect(unconstrained.sort()).toEqual([...UNCONSTRAINED].sort());
  });
});

/** One request with any method (fetch refuses TRACE and CONNECT). */
function rawRequest(
  method: string,
  path: string,
): Promise<{ status: number; allow: string | undefined; body: string }> {
  const url = new URL(path, app.api.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path: `${url.pathname}${url.search}` }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, allow: res.headers.allow, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('methods', () => {
  it('every method a path of the document does not declare answers 405 with Allow; OPTIONS 204 with the same Allow; an unknown path 404', async () => {
    const wrong: string[] = [];
    for (const [template, item] of Object.entries(spec.paths)) {
      const declared = HTTP_METHODS.filter((method) => item[method]).map((method) => method.toUpperCase());
      const allow = new Set([...declared, ...(declared.includes('GET') ? ['HEAD'] : []), 'OPTIONS']);
      const driven = operations.find((candidate) => candidate.path === template)!;
      const path = template.replace(/\{(\w+)\}/g, (_, name: string) =>
        encodeURIComponent(String(driven.valid().path[name])),
      );
      for (const method of METHODS.filter(
        (method) =>
          method !== 'CONNECT' && !declared.includes(method) && !(method === 'HEAD' && declared.includes('GET')),
      )) {
        const answer = await rawRequest(method, path);
        const allowed = new Set(answer.allow?.split(',').map((name) => name.trim()));
        const expected = method === 'OPTIONS' ? 204 : 405;
        const shaped =
          method === 'HEAD' ||
          method === 'OPTIONS' ||
          (errorShape(JSON.parse(answer.body)) && answer.body.includes('"METHOD_NOT_ALLOWED"'));
        if (answer.status !== expected || !shaped || [...allow].sort().join() !== [...allowed].sort().join())
          wrong.push(
            `${method} ${path}: ${answer.status} Allow: ${answer.allow} ${answer.body.slice(0, 80)} (expected ${expected} Allow: ${[...allow].join(', ')})`,
          );
      }
    }
    expect(wrong).toEqual([]);
    for (const method of ['GET', 'POST', 'PURGE', 'TRACE']) {
      const answer = await rawRequest(method, '/api/no-such-path');
      expect({
        status: answer.status,
        code: (JSON.parse(answer.body) as { error: { code: string } }).error.code,
      }).toEqual({ status: 404, code: 'NOT_FOUND' });
    }
  });
});

/** `{}`: any value is allowed. */
function isOpenSchema(value: unknown): boolean {
  return typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}
