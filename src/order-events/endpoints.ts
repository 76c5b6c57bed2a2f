/** Operators' webhook endpoints (docs/api.md): the row is the intent; its delivery is woken here (else: reconciler). */
import type { AppConfig } from '../config/index.js';
import type { DeliveryStatus, EndpointRow, WebhookStore } from '../db/webhooks.js';
import { CURSOR_POSITIONS, decodeCursor, pageOf, type Page } from '../infra/cursor.js';
import type { Logger } from '../infra/logger.js';
import { echo, QuietError, Refusal } from '../infra/refusal.js';
import { ORDER_EVENT_TYPES, type OrderEventType } from '../model/order-workflow.js';
import { newOrderNo } from '../order/order-numbers.js';
import type { EndpointDeliveryClient } from './endpoint-delivery-client.js';
import { generateEndpointSecret, type EndpointSecretBox } from './endpoint-secrets.js';
import {
  attemptView,
  deliveryView,
  endpointView,
  withFigures,
  type AttemptView,
  type DeliveryView,
  type EndpointView,
  type EndpointWithFigures,
  type EndpointWithSecret,
  type ResendAccepted,
} from './endpoint-views.js';

export { ATTEMPT_OUTCOMES, DELIVERY_STATUSES } from '../db/webhooks.js';

/** `ep_` and a ULID (the order numbers' alphabet: time first, then 80 random bits). */
export const ENDPOINT_ID_PATTERN = /^ep_[0-9A-HJKMNP-TV-Z]{26}$/;
export const MAX_ENDPOINT_URL_CHARS = 2048;
export const MAX_ENDPOINT_DESCRIPTION_CHARS = 200;
/** How long the old secret keeps signing beside the new one after a rotation, unless told: a day. */
export const DEFAULT_OVERLAP_SECONDS = 86_400;
export const MAX_OVERLAP_SECONDS = 604_800;
/** Absolute http(s), no blanks or credentials (nothing before an `@`); `u` counts code points as JSON Schema does. */
export const ENDPOINT_URL_PATTERN = new RegExp(
  String.raw`^(?=.{1,${MAX_ENDPOINT_URL_CHARS}}$)https?://[^\s/?#@\\]+(?:[/?#]\S*)?$`,
  'u',
);
export const ENDPOINT_URL_RULE = `url: an absolute http:// or https:// URL of at most ${MAX_ENDPOINT_URL_CHARS} characters, without blanks or credentials (user:pass@)`;
/** How long a create, enable, rotation or resend waits for Temporal to wake the delivery before answering anyway. */
export const WAKE_WITHIN_MS = 2_000;

/** `description` '' clears it. */
type EndpointChange = {
  url?: string;
  eventTypes?: readonly string[];
  description?: string;
  includeShopperId?: boolean;
  enabled?: boolean;
};

/** No such endpoint, or no such event or delivery of it: the API answers 404. */
export class WebhookNotFound extends QuietError {
  override name = 'WebhookNotFound';
}

/** The webhook store's methods the endpoints' API uses (the API guards each with MySQL's breaker). */
export const ENDPOINT_STORE_METHODS = [
  'createEndpoint',
  'getEndpoint',
  'listEndpoints',
  'updateEndpoint',
  'rotateSecret',
  'deliveriesPage',
  'deliveryOf',
  'attemptsOf',
  'resend',
  'deliveryFigures',
] as const satisfies readonly (keyof WebhookStore)[];

export class WebhookEndpoints {
  constructor(
    private readonly deps: {
      webhooks: Pick<WebhookStore, (typeof ENDPOINT_STORE_METHODS)[number]>;
      secrets: Pick<EndpointSecretBox, 'seal'>;
      delivery: Pick<EndpointDeliveryClient, 'wake'>;
      settings: Pick<AppConfig['webhookDelivery'], 'requireHttps' | 'retryPeriodMs'>;
      logger: Pick<Logger, 'warn'>;
    },
  ) {}

  async create(request: Omit<EndpointChange, 'enabled'> & { url: string }): Promise<EndpointWithSecret> {
    const url = this.checkedUrl(request.url);
    const eventTypes = checkedEventTypes(request.eventTypes ?? []);
    const description = checkedDescription(request.description);
    const endpointId = `ep_${newOrderNo()}`;
    const secret = generateEndpointSecret();
    const row = await this.deps.webhooks.createEndpoint({
      endpointId,
      url,
      eventTypes,
      description,
      includeShopperId: request.includeShopperId ?? false,
      secretBox: this.deps.secrets.seal(endpointId, secret),
    });
    await this.wake(endpointId, 'created');
    return { endpoint: endpointView(row), secret };
  }

  /** Every endpoint, oldest first, with what each is owed, was delivered and was given up. */
  async list(): Promise<{ items: EndpointWithFigures[] }> {
    const { webhooks } = this.deps;
    const [rows, figures] = await Promise.all([webhooks.listEndpoints(), webhooks.deliveryFigures()]);
    return { items: rows.map((row) => withFigures(row, figures.get(row.endpointId))) };
  }

  async get(endpointId: string): Promise<EndpointWithFigures> {
    const { webhooks } = this.deps;
    const [row, figures] = await Promise.all([webhooks.getEndpoint(endpointId), webhooks.deliveryFigures()]);
    if (!row) throw noEndpoint(endpointId);
    return withFigures(row, figures.get(endpointId));
  }

  /** Checked whole before anything is written; enabling wakes the delivery (events queue from where it stopped). */
  async update(endpointId: string, change: EndpointChange): Promise<EndpointView> {
    const checked = {
      ...(change.url === undefined ? {} : { url: this.checkedUrl(change.url) }),
      ...(change.eventTypes === undefined ? {} : { eventTypes: checkedEventTypes(change.eventTypes) }),
      ...(change.description === undefined ? {} : { description: checkedDescription(change.description) }),
      ...(change.includeShopperId === undefined ? {} : { includeShopperId: change.includeShopperId }),
      ...(change.enabled === undefined ? {} : { enabled: change.enabled }),
    };
    const row = await this.deps.webhooks.updateEndpoint(endpointId, checked);
    if (!row) throw noEndpoint(endpointId);
    if (change.enabled === true) await this.wake(endpointId, 'enabled');
    return endpointView(row);
  }

  /** A new secret signs from now on; the current one beside it for `overlapSeconds` (receivers switch meanwhile). */
  async rotateSecret(endpointId: string, overlapSeconds = DEFAULT_OVERLAP_SECONDS): Promise<EndpointWithSecret> {
    if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > MAX_OVERLAP_SECONDS)
      throw new Refusal('INVALID_REQUEST', `overlapSeconds: a whole number from 0 to ${MAX_OVERLAP_SECONDS}`);
    const secret = generateEndpointSecret();
    const rotation = { oldUntil: new Date(Date.now() + overlapSeconds * 1_000), replaceAll: overlapSeconds === 0 };
    const sealed = this.deps.secrets.seal(endpointId, secret);
    const done = await this.deps.webhooks.rotateSecret(endpointId, sealed, rotation);
    if (!done) throw noEndpoint(endpointId);
    // A second rotation would drop the first one's old secret while receivers may still verify with it.
    if (!done.rotated)
      throw new Refusal(
        'ROTATION_IN_OVERLAP',
        `the previous rotation's old secret signs until ${done.row.oldSecretUntil?.toISOString()}: rotate after it, ` +
          'or with overlapSeconds 0 to replace every secret at once',
      );
    if (done.row.enabled) await this.wake(endpointId, 'rotated');
    return { endpoint: endpointView(done.row), secret };
  }

  /** The endpoint's deliveries, newest event first, of one status when given. */
  async deliveries(
    endpointId: string,
    query: { status?: DeliveryStatus | undefined; cursor?: string | undefined; limit: number },
  ): Promise<Page<DeliveryView>> {
    const beforeSeq = query.cursor ? Number(decodeCursor(query.cursor, CURSOR_POSITIONS.deliveries)[0]) : undefined;
    await this.existing(endpointId);
    const rows = await this.deps.webhooks.deliveriesPage(endpointId, {
      ...(query.status ? { status: query.status } : {}),
      ...(beforeSeq ? { beforeSeq } : {}),
      limit: query.limit + 1,
    });
    return pageOf(rows, query.limit, deliveryView, (last) => [String(last.seq)]);
  }

  /** Each attempt at one event, oldest first. */
  async attempts(endpointId: string, eventId: string): Promise<{ items: AttemptView[] }> {
    await this.existing(endpointId);
    const delivery = await this.deps.webhooks.deliveryOf(endpointId, eventId);
    if (!delivery) throw new WebhookNotFound(`no delivery of event ${echo(eventId)} to endpoint ${endpointId}`);
    const attempts = await this.deps.webhooks.attemptsOf(endpointId, delivery.seq);
    return { items: attempts.map(attemptView) };
  }

  /** The event owed again now, whatever became of it (any type: asked for); a disabled endpoint's once enabled. */
  async resend(endpointId: string, eventId: string): Promise<ResendAccepted> {
    const endpoint = await this.existing(endpointId);
    if (!(await this.deps.webhooks.resend(endpointId, eventId, this.deps.settings.retryPeriodMs)))
      throw new WebhookNotFound(`no event ${echo(eventId)} in the feed (never written, or past EVENTS_RETENTION)`);
    if (endpoint.enabled) await this.wake(endpointId, 'resent');
    return { endpointId, eventId, status: 'PENDING' };
  }

  private async existing(endpointId: string): Promise<EndpointRow> {
    const row = await this.deps.webhooks.getEndpoint(endpointId);
    if (!row) throw noEndpoint(endpointId);
    return row;
  }

  /** Bounded; a failure is only logged: the reconciler starts the delivery of every enabled endpoint anyway. */
  private async wake(endpointId: string, why: string): Promise<void> {
    try {
      await this.deps.delivery.wake(endpointId, WAKE_WITHIN_MS);
    } catch (err) {
      this.deps.logger.warn(
        { err, endpointId, why },
        'could not wake the endpoint delivery; the reconciler starts it within RECONCILE_INTERVAL',
      );
    }
  }

  private checkedUrl(url: string): string {
    const problem = (rule: string) => new Refusal('INVALID_REQUEST', rule);
    if (!ENDPOINT_URL_PATTERN.test(url)) throw problem(ENDPOINT_URL_RULE);
    const parsed = URL.parse(url);
    if (!parsed) throw problem('url: not a URL (its host or port cannot be read)');
    if (parsed.username || parsed.password) throw problem('url: must not hold credentials (user:pass@)');
    if (this.deps.settings.requireHttps && parsed.protocol !== 'https:')
      throw problem('url: https:// only (EVENTS_REQUIRE_HTTPS)');
    return url;
  }
}

/** Known types, each once; empty: every type. */
function checkedEventTypes(types: readonly string[]): OrderEventType[] {
  const known: readonly string[] = ORDER_EVENT_TYPES;
  const unknown = types.find((type) => !known.includes(type));
  if (unknown !== undefined)
    throw new Refusal('INVALID_REQUEST', `eventTypes: ${echo(unknown)} is not one of ${ORDER_EVENT_TYPES.join(', ')}`);
  const repeated = types.find((type, index) => types.indexOf(type) !== index);
  if (repeated !== undefined) throw new Refusal('INVALID_REQUEST', `eventTypes: ${echo(repeated)} is listed twice`);
  return types as OrderEventType[];
}

function checkedDescription(description: string | undefined): string | null {
  if (description === undefined || description === '') return null;
  if ([...description].length > MAX_ENDPOINT_DESCRIPTION_CHARS)
    throw new Refusal('INVALID_REQUEST', `description: at most ${MAX_ENDPOINT_DESCRIPTION_CHARS} characters`);
  return description;
}

const noEndpoint = (endpointId: string) => new WebhookNotFound(`no webhook endpoint ${endpointId}`);
