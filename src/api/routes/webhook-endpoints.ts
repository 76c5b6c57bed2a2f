import Router from '@koa/router';
import { z } from 'zod';
import { WebhookNotFound, type EndpointWithSecret, type WebhookEndpoints } from '../../events/endpoints.js';
import { requireAdmin } from '../auth.js';
import { echo } from '../../infra/refusal.js';
import { ApiError } from '../errors.js';
import {
  pageSchema,
  webhookAttemptListSchema,
  webhookDeliverySchema,
  webhookEndpointListSchema,
  webhookEndpointReadSchema,
  webhookEndpointSchema,
  webhookEndpointWithSecretSchema,
  webhookResendSchema,
} from '../response-schemas.js';
import { route } from '../route.js';
import {
  createWebhookEndpointSchema,
  rotateEndpointSecretSchema,
  updateWebhookEndpointSchema,
  webhookDeliveriesQuerySchema,
  webhookDeliveryParams,
  webhookEndpointParams,
} from '../schemas.js';

const PATH = '/api/admin/webhook-endpoints';

/**
 * The operators' routes for merchants' webhook endpoints (docs/api.md, "Webhook endpoints"), admin token only: the
 * events-read token reads the feed but never sees nor makes a signing secret. Order of checks: token, path (404 when
 * it names nothing), body and query (400), then the endpoint (404); a refused request changes nothing.
 */
export function webhookEndpointRoutes(deps: { endpoints: WebhookEndpoints; adminToken: string }): Router {
  const { endpoints } = deps;
  const router = new Router();
  const unauthorized = { 401: { codes: ['UNAUTHORIZED' as const] } };
  const notFound = { 404: { codes: ['NOT_FOUND' as const] } };
  const invalid = { 400: { codes: ['INVALID_REQUEST' as const] } };

  route(
    router,
    {
      method: 'post',
      path: PATH,
      operationId: 'adminCreateWebhookEndpoint',
      summary: 'Add an endpoint for order events; its signing secret is in this answer only',
      tag: 'admin',
      auth: 'admin',
      body: createWebhookEndpointSchema,
      responses: {
        201: {
          description: 'The endpoint and its secret',
          schema: webhookEndpointWithSecretSchema,
          headers: z.object({ Location: z.string().meta({ description: `The endpoint: ${PATH}/{endpointId}` }) }),
        },
      },
      errors: { ...invalid, ...unauthorized },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const created = await endpoints.create(input.body());
      ctx.status = 201;
      ctx.set('Location', `${PATH}/${created.endpoint.endpointId}`);
      answerSecret(ctx, created);
    },
  );

  route(
    router,
    {
      method: 'get',
      path: PATH,
      operationId: 'adminListWebhookEndpoints',
      summary: 'Every endpoint, oldest first, with its deliveries pending, delivered and given up',
      tag: 'admin',
      auth: 'admin',
      responses: { 200: { description: 'The endpoints', schema: webhookEndpointListSchema } },
      errors: unauthorized,
    },
    async (ctx) => {
      requireAdmin(ctx, deps.adminToken);
      ctx.body = await endpoints.list();
    },
  );

  route(
    router,
    {
      method: 'get',
      path: `${PATH}/:endpointId`,
      operationId: 'adminGetWebhookEndpoint',
      summary: 'One endpoint with its deliveries pending, delivered and given up',
      tag: 'admin',
      auth: 'admin',
      params: webhookEndpointParams,
      responses: { 200: { description: 'The endpoint', schema: webhookEndpointReadSchema } },
      errors: { ...unauthorized, ...notFound },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const { endpointId } = pathOf(ctx, input.params());
      ctx.body = await answering404(() => endpoints.get(endpointId));
    },
  );

  route(
    router,
    {
      method: 'patch',
      path: `${PATH}/:endpointId`,
      operationId: 'adminUpdateWebhookEndpoint',
      summary: 'Change its URL, event types or description; disable or enable it',
      description:
        'Enabling it clears its disabled reason and any pause; the events written while it was disabled are queued then.',
      tag: 'admin',
      auth: 'admin',
      params: webhookEndpointParams,
      body: updateWebhookEndpointSchema,
      responses: { 200: { description: 'The endpoint after the change', schema: webhookEndpointSchema } },
      errors: { ...invalid, ...unauthorized, ...notFound },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const { endpointId } = pathOf(ctx, input.params());
      const change = input.body();
      ctx.body = await answering404(() => endpoints.update(endpointId, change));
    },
  );

  route(
    router,
    {
      method: 'post',
      path: `${PATH}/:endpointId/rotate-secret`,
      operationId: 'adminRotateWebhookEndpointSecret',
      summary: 'A new signing secret (in this answer only); the old one signs beside it for overlapSeconds',
      tag: 'admin',
      auth: 'admin',
      params: webhookEndpointParams,
      body: rotateEndpointSecretSchema,
      responses: { 200: { description: 'The endpoint and its new secret', schema: webhookEndpointWithSecretSchema } },
      errors: { ...invalid, ...unauthorized, ...notFound },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const { endpointId } = pathOf(ctx, input.params());
      const { overlapSeconds } = input.body();
      answerSecret(ctx, await answering404(() => endpoints.rotateSecret(endpointId, overlapSeconds)));
    },
  );

  route(
    router,
    {
      method: 'get',
      path: `${PATH}/:endpointId/deliveries`,
      operationId: 'adminListWebhookDeliveries',
      summary: "The endpoint's deliveries, newest event first, of one status when given (keyset-paged)",
      tag: 'admin',
      auth: 'admin',
      params: webhookEndpointParams,
      query: webhookDeliveriesQuerySchema,
      responses: {
        200: {
          description: 'A page of deliveries',
          schema: pageSchema(webhookDeliverySchema, 'WebhookDeliveriesPage'),
        },
      },
      errors: { ...invalid, ...unauthorized, ...notFound },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const { endpointId } = pathOf(ctx, input.params());
      const query = input.query();
      ctx.body = await answering404(() => endpoints.deliveries(endpointId, query));
    },
  );

  route(
    router,
    {
      method: 'get',
      path: `${PATH}/:endpointId/deliveries/:eventId/attempts`,
      operationId: 'adminListWebhookAttempts',
      summary: 'Each attempt to send one event to the endpoint, oldest first',
      tag: 'admin',
      auth: 'admin',
      params: webhookDeliveryParams,
      responses: { 200: { description: 'The attempts', schema: webhookAttemptListSchema } },
      errors: { ...unauthorized, ...notFound },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const { endpointId, eventId } = pathOf(ctx, input.params());
      ctx.body = await answering404(() => endpoints.attempts(endpointId, eventId));
    },
  );

  route(
    router,
    {
      method: 'post',
      path: `${PATH}/:endpointId/deliveries/:eventId/resend`,
      operationId: 'adminResendWebhookEvent',
      summary: 'Send an event of the feed to the endpoint again, now, with a fresh retry period',
      description:
        'Whatever became of it, of a type the endpoint takes or not; a disabled endpoint gets it once enabled.',
      tag: 'admin',
      auth: 'admin',
      params: webhookDeliveryParams,
      responses: { 202: { description: 'Owed again', schema: webhookResendSchema } },
      errors: { ...unauthorized, ...notFound },
    },
    async (ctx, input) => {
      requireAdmin(ctx, deps.adminToken);
      const { endpointId, eventId } = pathOf(ctx, input.params());
      ctx.body = await answering404(() => endpoints.resend(endpointId, eventId));
      ctx.status = 202;
    },
  );
  return router;
}

/** The secret is in this answer only: no cache on the way may keep a copy. */
function answerSecret(ctx: { set(name: string, value: string): void; body: unknown }, answer: EndpointWithSecret) {
  ctx.set('Cache-Control', 'no-store');
  ctx.body = answer;
}

/** A path that does not match names nothing: 404, never 400. */
function pathOf<P>(ctx: { path: string }, params: P | null): P {
  if (!params) throw new ApiError(404, 'NOT_FOUND', `no webhook endpoint or event at ${echo(ctx.path)}`);
  return params;
}

async function answering404<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof WebhookNotFound) throw new ApiError(404, 'NOT_FOUND', err.message);
    throw err;
  }
}
