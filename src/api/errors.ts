/** One error shape for every endpoint; codes are stable (docs/api.md, "Error codes"), messages for humans. */
import type { Context, Next } from 'koa';
import { ZodError } from 'zod';
import { DependencyUnavailableError, type DependencyName } from '../infra/dependency-guard.js';
import type { Logger } from '../infra/logger.js';
import { errorStatus, type ErrorCode } from '../infra/error-codes.js';
import { echo, QuietError, Refusal } from '../infra/refusal.js';

/** An answer the API gives on purpose (bad input, a wrong token, a refusal mapped by toApiError), not a bug. */
export class ApiError extends QuietError {
  readonly status: number;
  readonly details?: Record<string, unknown>;
  /** E.g. Retry-After on a 429. */
  readonly headers?: Record<string, string>;

  constructor(
    readonly code: ErrorCode,
    message: string,
    details?: Record<string, unknown>,
    headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = errorStatus(code);
    if (details) this.details = details;
    if (headers) this.headers = headers;
  }
}

export const invalidRequest = (message: string, details?: Record<string, unknown>) =>
  new ApiError('INVALID_REQUEST', message, details);

export function notAllowed(ctx: { method: string; path: string }, allow: string): ApiError {
  const message = `${echo(ctx.method)} is not allowed on ${echo(ctx.path)}; allowed: ${allow}`;
  return new ApiError('METHOD_NOT_ALLOWED', message, undefined, { Allow: allow });
}

/** Maps whatever was thrown to the error shape and logs the unexpected. */
export function errorMiddleware(logger: Logger) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
      // A known path with another method got its 405 inside (methodNotAllowed).
      if (ctx.status === 404 && ctx.body === undefined)
        throw new ApiError('NOT_FOUND', `no route for ${ctx.method} ${echo(ctx.path)}`);
    } catch (err) {
      const apiError = toApiError(err);
      // Shared with the request-log middleware, when mounted.
      const state = ctx.state as { requestId?: string; errorCode?: string };
      state.errorCode = apiError.code;
      // UNAVAILABLE is an answer, not a failure: logged once per breaker change or shedding episode, not per request.
      if (apiError.status >= 500 && apiError.code !== 'UNAVAILABLE' && apiError.code !== 'OUTCOME_UNKNOWN')
        logger.error({ err, reqId: state.requestId, path: ctx.path, method: ctx.method }, 'request failed');
      ctx.status = apiError.status;
      if (apiError.headers) ctx.set(apiError.headers);
      ctx.body = errorBody(apiError);
    }
  };
}

export function errorBody(apiError: ApiError) {
  return {
    error: {
      code: apiError.code,
      message: apiError.message,
      ...(apiError.details ? { details: apiError.details } : {}),
    },
  };
}

const UNAVAILABLE_MESSAGES: Record<DependencyName, string> = {
  redis: 'the inventory did not answer in time; nothing was reserved by this request, retry shortly',
  mysql: 'the order store did not answer in time; retry shortly',
  temporal: 'the order service did not answer in time; retry shortly',
  workflows: 'the order did not answer in time; retry shortly',
};

/** The code an answer to `err` carries, without building the answer (the outcome metrics' label). */
export function errorCodeOf(err: unknown): ErrorCode {
  return err instanceof ApiError || err instanceof Refusal ? err.code : toApiError(err).code;
}

/** The API's answer to whatever was thrown; anything unrecognised is a bug (500). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof Refusal) {
    const headers = err.retryAfterSeconds === undefined ? undefined : { 'Retry-After': String(err.retryAfterSeconds) };
    return new ApiError(err.code, err.message, err.details, headers);
  }
  // The one answer to a dependency that ran out of time, failed, or has an open breaker.
  if (err instanceof DependencyUnavailableError) {
    const headers = { 'Retry-After': String(err.retryAfterSeconds) };
    return new ApiError('UNAVAILABLE', UNAVAILABLE_MESSAGES[err.dependency], undefined, headers);
  }
  if (err instanceof ZodError)
    return invalidRequest(
      err.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`).join('; '),
    );
  // The body parser's http-errors.
  const httpError = err as { status?: number; statusCode?: number; expose?: boolean; message?: string; type?: string };
  const status = httpError.status ?? httpError.statusCode;
  // Every bad input is 400 INVALID_REQUEST; the message says which.
  if (status === 413) return invalidRequest('request body is larger than 16 KB');
  if (status === 415) return invalidRequest('send JSON with Content-Type: application/json');
  if (status && status >= 400 && status < 500)
    return invalidRequest(httpError.expose && httpError.message ? httpError.message : 'malformed request');
  return new ApiError('INTERNAL', 'internal error');
}
