import Router from '@koa/router';
import { z } from 'zod';
import { WebhookNotFound, type WebhookEndpoints } from '../../order-events/endpoints.js';
import type { OperatorTokens } from '../auth.js';
import { echo } from '../../infra/refusal.js';
import { ApiError } from '../errors.js';
import { pageSchema } from '../../infra/schema-fields.js';
import {
  webhookAttemptListSchema,
  webhookDeliverySchema,
  webhookEndpointListSchema,
  webhookEndpointReadSchema,
  webhookEndpointSchema,
  webhookEndpointWithSecretSchema,
  webhookResendSchema,
} from '../../order-events/endpoint-views.js';
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

/** Admin token only: the events-read token never sees a signing secret (docs/api.md, "Webhook endpoints"). */
export function webhookEndpointRoutes(deps: { endpoints: WebhookEndpoints; operators: OperatorTokens }): Router {
  const { endpoints } = deps;
  const router = new Router();
  const asAdmin = { tag: 'admin', ...deps.operators.admin };

  route(router, {
    at: `POST ${PATH}`,
    operationId: 'adminCreateWebhookEndpoint',
    summary: 'Add an endpoint for order events; its signing secret is in this answer only',
    ...asAdmin,
    body: createWebhookEndpointSchema,
    responses: {
      201: {
        description: 'The endpoint and its secret',
        schema: webhookEndpointWithSecretSchema,
        headers: z.object({ Location: z.string().meta({ description: `The endpoint: ${PATH}/{endpointId}` }) }),
      },
    },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED'],
    async handler(ctx, input) {
      const created = await endpoints.create(input.body());
      ctx.status = 201;
      ctx.set('Location', `${PATH}/${created.endpoint.endpointId}`);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = created;
    },
  });

  route(router, {
    at: `GET ${PATH}`,
    operationId: 'adminListWebhookEndpoints',
    summary: 'Every endpoint, oldest first, with its deliveries pending, delivered and given up',
    ...asAdmin,
    responses: { 200: { description: 'The endpoints', schema: webhookEndpointListSchema } },
    errors: ['UNAUTHORIZED'],
    async handler(ctx) {
      ctx.body = await endpoints.list();
    },
  });

  route(router, {
    at: `GET ${PATH}/:endpointId`,
    operationId: 'adminGetWebhookEndpoint',
    summary: 'One endpoint with its deliveries pending, delivered and given up',
    ...asAdmin,
    params: webhookEndpointParams,
    responses: { 200: { description: 'The endpoint', schema: webhookEndpointReadSchema } },
    errors: ['UNAUTHORIZED', 'NOT_FOUND'],
    async handler(ctx, input) {
      ctx.body = await found(ctx, input.params(), ({ endpointId }) => endpoints.get(endpointId));
    },
  });

  route(router, {
    at: `PATCH ${PATH}/:endpointId`,
    operationId: 'adminUpdateWebhookEndpoint',
    summary: 'Change its URL, event types or description; disable or enable it',
    description:
      'Enabling it clears its disabled reason and any pause; the events written while it was disabled are queued then.',
    ...asAdmin,
    params: webhookEndpointParams,
    body: updateWebhookEndpointSchema,
    responses: { 200: { description: 'The endpoint after the change', schema: webhookEndpointSchema } },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND'],
    async handler(ctx, input) {
      ctx.body = await found(ctx, input.params(), ({ endpointId }) => endpoints.update(endpointId, input.body()));
    },
  });

  route(router, {
    at: `POST ${PATH}/:endpointId/rotate-secret`,
    operationId: 'adminRotateWebhookEndpointSecret',
    summary: 'A new signing secret (in this answer only); the old one signs beside it for overlapSeconds',
    ...asAdmin,
    params: webhookEndpointParams,
    body: rotateEndpointSecretSchema,
    responses: { 200: { description: 'The endpoint and its new secret', schema: webhookEndpointWithSecretSchema } },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND', 'ROTATION_IN_OVERLAP'],
    async handler(ctx, input) {
      const rotate = ({ endpointId }: { endpointId: string }) =>
        endpoints.rotateSecret(endpointId, input.body().overlapSeconds);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = await found(ctx, input.params(), rotate);
    },
  });

  route(router, {
    at: `GET ${PATH}/:endpointId/deliveries`,
    operationId: 'adminListWebhookDeliveries',
    summary: "The endpoint's deliveries, newest event first, of one status when given (keyset-paged)",
    ...asAdmin,
    params: webhookEndpointParams,
    query: webhookDeliveriesQuerySchema,
    responses: {
      200: {
        description: 'A page of deliveries',
        schema: pageSchema(webhookDeliverySchema, 'WebhookDeliveriesPage'),
      },
    },
    errors: ['INVALID_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND'],
    async handler(ctx, input) {
      ctx.body = await found(ctx, input.params(), ({ endpointId }) => endpoints.deliveries(endpointId, input.query()));
    },
  });

  route(router, {
    at: `GET ${PATH}/:endpointId/deliveries/:eventId/attempts`,
    operationId: 'adminListWebhookAttempts',
    summary: 'Each attempt to send one event to the endpoint, oldest first',
    ...asAdmin,
    params: webhookDeliveryParams,
    responses: { 200: { description: 'The attempts', schema: webhookAttemptListSchema } },
    errors: ['UNAUTHORIZED', 'NOT_FOUND'],
    async handler(ctx, input) {
      ctx.body = await found(ctx, input.params(), ({ endpointId, eventId }) => endpoints.attempts(endpointId, eventId));
    },
  });

  route(router, {
    at: `POST ${PATH}/:endpointId/deliveries/:eventId/resend`,
    operationId: 'adminResendWebhookEvent',
    summary: 'Send an event of the feed to the endpoint again, now, with a fresh retry period',
    description:
      'Whatever became of it, of a type the endpoint takes or not; a disabled endpoint gets it once enabled.',
    ...asAdmin,
    params: webhookDeliveryParams,
    responses: { 202: { description: 'Owed again', schema: webhookResendSchema } },
    errors: ['UNAUTHORIZED', 'NOT_FOUND'],
    async handler(ctx, input) {
      ctx.body = await found(ctx, input.params(), ({ endpointId, eventId }) => endpoints.resend(endpointId, eventId));
      ctx.status = 202;
    },
  });
  return router;
}

/** `call` on the path's endpoint (or event); a path that does not match names nothing: 404, not 400, checked first. */
async function found<P, T>(ctx: { path: string }, params: P | null, call: (params: P) => Promise<T>): Promise<T> {
  if (!params) throw new ApiError('NOT_FOUND', `no webhook endpoint or event at ${echo(ctx.path)}`);
  try {
    return await call(params);
  } catch (err) {
    if (err instanceof WebhookNotFound) throw new ApiError('NOT_FOUND', err.message);
    throw err;
  }
}
