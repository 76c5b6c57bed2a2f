/**
 * Merchants' webhook endpoints for order events, as operators manage them (docs/api.md, "Webhook endpoints"): create
 * one (its `whsec_` secret shown once), change or disable it, rotate its secret with an overlap, follow its deliveries
 * and attempts, send an event again. The endpoint's row is the intent: its delivery workflow is only woken here, and
 * the reconciler starts any enabled endpoint's delivery that does not run within RECONCILE_INTERVAL.
 */
import type { AppConfig } from '../config/index.js';
import type {
  AttemptOutcome,
  DeliveryFigures,
  DeliveryRow,
  DeliveryStatus,
  EndpointRow,
  WebhookStore,
} from '../db/webhooks.js';
import { CURSOR_POSITIONS, decodeCursor, pageOf, type Page } from '../infra/cursor.js';
import type { Logger } from '../infra/logger.js';
import { echo, QuietError, Refusal } from '../infra/refusal.js';
import { ORDER_EVENT_TYPES, type OrderEventType } from '../model/order-workflow.js';
import { newOrderNo } from '../order/order-numbers.js';
import type { EndpointDeliveryClient } from './endpoint-delivery-client.js';
import { generateEndpointSecret, type EndpointSecretBox } from './endpoint-secrets.js';

export { ATTEMPT_OUTCOMES, DELIVERY_STATUSES } from '../db/webhooks.js';

/** `ep_` and a ULID (the order numbers' alphabet: time first, then 80 random bits). */
export const ENDPOINT_ID_PATTERN = /^ep_[0-9A-HJKMNP-TV-Z]{26}$/;
export const MAX_ENDPOINT_URL_CHARS = 2048;
export const MAX_ENDPOINT_DESCRIPTION_CHARS = 200;
/** How long the old secret keeps signing beside the new one after a rotation, unless told: a day. */
export const DEFAULT_OVERLAP_SECONDS = 86_400;
export const MAX_OVERLAP_SECONDS = 604_800;
/**
 * An absolute http(s) URL of at most 2048 characters, without blanks and without credentials (nothing before an `@`
 * in its authority). Scheme in lower case. The `u` flag counts characters as JSON Schema does (code points).
 */
export const ENDPOINT_URL_PATTERN = new RegExp(
  String.raw`^(?=.{1,${MAX_ENDPOINT_URL_CHARS}}$)https?://[^\s/?#@\\]+(?:[/?#]\S*)?$`,
  'u',
);
export const ENDPOINT_URL_RULE = `url: an absolute http:// or https:// URL of at most ${MAX_ENDPOINT_URL_CHARS} characters, without blanks or credentials (user:pass@)`;
/** How long a create, enable, rotation or resend waits for Temporal to wake the delivery before answering anyway. */
export const WAKE_WITHIN_MS = 2_000;

export interface EndpointView {
  endpointId: string;
  url: string;
  /** Empty: every type. */
  eventTypes: OrderEventType[];
  description: string | null;
  enabled: boolean;
  /** Why it is disabled: an operator, or the endpoint answered 410 Gone. */
  disabledReason: string | null;
  /** Until when the secret before the last rotation still signs beside the current one. */
  oldSecretUntil: string | null;
  /** The endpoint asked to slow down (429, 502-504): nothing is sent to it before then. */
  pausedUntil: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface DeliveryFiguresView {
  pending: number;
  failing: number;
  delivered: number;
  gaveUp: number;
  oldestPendingQueuedAt: string | null;
}

export type EndpointWithFigures = EndpointView & { deliveries: DeliveryFiguresView };

/** A create's or rotation's answer: the only time the secret is shown. */
export interface EndpointWithSecret {
  endpoint: EndpointView;
  secret: string;
}

export interface DeliveryView {
  eventId: string;
  type: OrderEventType;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string | null;
  retryUntil: string;
  lastStatus: number | null;
  lastError: string | null;
  queuedAt: string;
  deliveredAt: string | null;
}

export interface AttemptView {
  attemptedAt: string;
  outcome: AttemptOutcome;
  httpStatus: number | null;
  error: string | null;
  durationMs: number | null;
}

export interface ResendAccepted {
  endpointId: string;
  eventId: string;
  status: 'PENDING';
}

export interface NewEndpointRequest {
  url: string;
  eventTypes?: readonly string[] | undefined;
  description?: string | undefined;
}

export interface EndpointChange {
  url?: string | undefined;
  eventTypes?: readonly string[] | undefined;
  /** '' clears it. */
  description?: string | undefined;
  enabled?: boolean | undefined;
}

/** No such endpoint, or no such event or delivery of it: the API answers 404. */
export class WebhookNotFound extends QuietError {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookNotFound';
  }
}

export type EndpointStore = Pick<
  WebhookStore,
  | 'createEndpoint'
  | 'getEndpoint'
  | 'listEndpoints'
  | 'updateEndpoint'
  | 'rotateSecret'
  | 'deliveriesPage'
  | 'deliveryOf'
  | 'attemptsOf'
  | 'resend'
  | 'deliveryFigures'
>;

export interface WebhookEndpointsDeps {
  webhooks: EndpointStore;
  secrets: Pick<EndpointSecretBox, 'seal'>;
  delivery: Pick<EndpointDeliveryClient, 'wake'>;
  settings: Pick<AppConfig['webhookDelivery'], 'requireHttps' | 'retryPeriodMs'>;
  logger: Pick<Logger, 'warn'>;
  /** ms since the epoch: when a rotation's overlap ends is counted from it. */
  now?: () => number;
}

export class WebhookEndpoints {
  private readonly now: () => number;

  constructor(private readonly deps: WebhookEndpointsDeps) {
    this.now = deps.now ?? Date.now;
  }

  async create(request: NewEndpointRequest): Promise<EndpointWithSecret> {
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
      secretBox: this.deps.secrets.seal(endpointId, secret),
    });
    await this.wake(endpointId, 'created');
    return { endpoint: endpointView(row), secret };
  }

  /** Every endpoint, oldest first, with what each is owed, was delivered and was given up. */
  async list(): Promise<{ items: EndpointWithFigures[] }> {
    const [rows, figures] = await Promise.all([
      this.deps.webhooks.listEndpoints(),
      this.deps.webhooks.deliveryFigures(),
    ]);
    return { items: rows.map((row) => withFigures(row, figures.get(row.endpointId))) };
  }

  async get(endpointId: string): Promise<EndpointWithFigures> {
    const [row, figures] = await Promise.all([
      this.deps.webhooks.getEndpoint(endpointId),
      this.deps.webhooks.deliveryFigures(),
    ]);
    if (!row) throw noEndpoint(endpointId);
    return withFigures(row, figures.get(endpointId));
  }

  /** Checked whole before anything is written; enabling wakes the delivery (events queue from where it stopped). */
  async update(endpointId: string, change: EndpointChange): Promise<EndpointView> {
    const checked = {
      ...(change.url === undefined ? {} : { url: this.checkedUrl(change.url) }),
      ...(change.eventTypes === undefined ? {} : { eventTypes: checkedEventTypes(change.eventTypes) }),
      ...(change.description === undefined ? {} : { description: checkedDescription(change.description) }),
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
    const oldUntil = new Date(this.now() + overlapSeconds * 1_000);
    const row = await this.deps.webhooks.rotateSecret(endpointId, this.deps.secrets.seal(endpointId, secret), oldUntil);
    if (!row) throw noEndpoint(endpointId);
    if (row.enabled) await this.wake(endpointId, 'rotated');
    return { endpoint: endpointView(row), secret };
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
    return {
      items: attempts.map((attempt) => ({
        attemptedAt: attempt.attemptedAt.toISOString(),
        outcome: attempt.outcome,
        httpStatus: attempt.httpStatus,
        error: attempt.error,
        durationMs: attempt.durationMs,
      })),
    };
  }

  /**
   * The event owed again, due now with a fresh retry period, whatever became of it (of a type the endpoint does not
   * take too: it was asked for). A disabled endpoint gets it once enabled.
   */
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
    const problem = endpointUrlProblem(url, this.deps.settings.requireHttps);
    if (problem) throw new Refusal('INVALID_REQUEST', problem);
    return url;
  }
}

/** Why `url` cannot be an endpoint, or null. */
export function endpointUrlProblem(url: string, requireHttps: boolean): string | null {
  if (!ENDPOINT_URL_PATTERN.test(url)) return ENDPOINT_URL_RULE;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'url: not a URL (its host or port cannot be read)';
  }
  if (parsed.username || parsed.password) return 'url: must not hold credentials (user:pass@)';
  if (requireHttps && parsed.protocol !== 'https:') return 'url: https:// only (EVENTS_REQUIRE_HTTPS)';
  return null;
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

/** '' or none: no description. */
function checkedDescription(description: string | undefined): string | null {
  if (description === undefined || description === '') return null;
  if ([...description].length > MAX_ENDPOINT_DESCRIPTION_CHARS)
    throw new Refusal('INVALID_REQUEST', `description: at most ${MAX_ENDPOINT_DESCRIPTION_CHARS} characters`);
  return description;
}

const noEndpoint = (endpointId: string) => new WebhookNotFound(`no webhook endpoint ${endpointId}`);

/** What reads show of an endpoint: never a secret, sealed or not. */
export function endpointView(row: EndpointRow): EndpointView {
  return {
    endpointId: row.endpointId,
    url: row.url,
    eventTypes: row.eventTypes,
    description: row.description,
    enabled: row.enabled,
    disabledReason: row.disabledReason,
    oldSecretUntil: row.oldSecretBox && row.oldSecretUntil ? row.oldSecretUntil.toISOString() : null,
    pausedUntil: row.pausedUntil?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function withFigures(row: EndpointRow, figures: DeliveryFigures | undefined): EndpointWithFigures {
  return {
    ...endpointView(row),
    deliveries: {
      pending: figures?.pending ?? 0,
      failing: figures?.failing ?? 0,
      delivered: figures?.delivered ?? 0,
      gaveUp: figures?.gaveUp ?? 0,
      oldestPendingQueuedAt: figures?.oldestPendingQueuedAt?.toISOString() ?? null,
    },
  };
}

function deliveryView(row: DeliveryRow): DeliveryView {
  return {
    eventId: row.eventId,
    type: row.type,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.nextAttemptAt?.toISOString() ?? null,
    retryUntil: row.retryUntil.toISOString(),
    lastStatus: row.lastStatus,
    lastError: row.lastError,
    queuedAt: row.queuedAt.toISOString(),
    deliveredAt: row.deliveredAt?.toISOString() ?? null,
  };
}
