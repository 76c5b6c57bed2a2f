/**
 * What the payment phase asks of Temporal, counted by the server itself: its frontend's `service_requests` by operation
 * and, as `db:<operation>`, what its services asked of their database (`persistence_requests`, every service), from the
 * dev server's Prometheus endpoint (`--metrics-port`), read before the phase and once every order closed, per payment.
 * Long polls are listed apart: they are the workers waiting for tasks, one answered per task handed out.
 */

/** Requests to Temporal's frontend, and its services' database operations (`db:`), in the app's namespace. */
export type TemporalRequests = Record<string, number>;

/** The long polls among the operations: a worker's wait for a task (each answered with a task, or empty). */
export const LONG_POLL_OPERATIONS = ['PollWorkflowTaskQueue', 'PollActivityTaskQueue', 'PollNexusTaskQueue'];

/** Reads `service_requests{service_name="frontend"}` and `persistence_requests` of `namespace`; null if unreachable. */
export async function scrapeTemporalRequests(
  metricsUrl: string | undefined,
  namespace: string,
): Promise<TemporalRequests | null> {
  if (!metricsUrl) return null;
  const text = await fetch(metricsUrl)
    .then((reply) => (reply.ok ? reply.text() : null))
    .catch(() => null);
  return text === null ? null : parseTemporalRequests(text, namespace);
}

export function parseTemporalRequests(text: string, namespace: string): TemporalRequests {
  const requests: TemporalRequests = {};
  for (const line of text.split('\n')) {
    const labels = /^(service_requests|persistence_requests)\{([^}]*)\} ([0-9.e+]+)$/.exec(line);
    if (!labels) continue;
    const label = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(labels[2]!)?.[1];
    const persistence = labels[1] === 'persistence_requests';
    if ((!persistence && label('service_name') !== 'frontend') || label('namespace') !== namespace) continue;
    const operation = label('operation');
    if (!operation) continue;
    const key = persistence ? `db:${operation}` : operation;
    requests[key] = (requests[key] ?? 0) + Number(labels[3]);
  }
  return requests;
}

/** Each operation's requests between two readings per payment (2 decimals), busiest first; zeros left out. */
export function requestsPerPayment(
  before: TemporalRequests,
  after: TemporalRequests,
  payments: number,
): TemporalRequests {
  const per = Object.entries(after)
    .map(([operation, count]) => [operation, count - (before[operation] ?? 0)] as const)
    .filter(([, added]) => added > 0)
    .sort(([, a], [, b]) => b - a)
    .map(([operation, added]) => [operation, Math.round((added / Math.max(1, payments)) * 100) / 100] as const);
  return Object.fromEntries(per);
}
