/** The pages' one way to call the API (the dashboard, the line demo): JSON in and out, errors as codes. */

/** The error shape every endpoint answers with. */
export interface ErrorBody {
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

export interface Reply<T> {
  status: number;
  json: T & ErrorBody;
  /** The error code; NETWORK_ERROR when no answer came. */
  code: string | null;
  /** Retry-After in seconds, when the answer had one. */
  retryAfter: number | null;
}

export async function api<T>(
  method: string,
  path: string,
  { body, token, headers = {} }: { body?: unknown; token?: string | undefined; headers?: Record<string, string> } = {},
): Promise<Reply<T>> {
  const init: RequestInit & { headers: Record<string, string> } = { method, headers: { ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  try {
    const res = await fetch(path, init);
    const json = (await res.json().catch(() => ({}))) as T & ErrorBody;
    const retryAfter = Number(res.headers.get('Retry-After') ?? NaN);
    return {
      status: res.status,
      json,
      code: json.error?.code ?? null,
      retryAfter: Number.isFinite(retryAfter) ? retryAfter : null,
    };
  } catch {
    return { status: 0, json: {} as T & ErrorBody, code: 'NETWORK_ERROR', retryAfter: null };
  }
}
