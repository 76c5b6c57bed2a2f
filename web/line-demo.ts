/**
 * The waiting line's demo page (/line-demo, development only): a shopper logs in through POST /api/auth/dev-login,
 * joins a sale's line, reads their place again when `Retry-After` says (GET /api/sales/:sku/line/me), sees their
 * position, the people ahead and the wait counting down, and once admitted checks out with the admission
 * (`Admission-Token`) and follows the order. /line-demo?sku=X&user=Y reads Y's place in X's line on load: a place is
 * kept across a refresh and from any device. Bundled into line-demo.html like the dashboard's script (see
 * src/api/scripted-pages.ts), type-checked with the DOM's types (./tsconfig.json).
 */
import type { PlaceView } from '../src/line/line-views.js';
import { api, type Reply } from './api-client.js';

declare global {
  interface Window {
    /** What the page was told, read by the browser test (test/line-page.browser.test.ts). */
    lineDemo?: { reads: Reading[] };
  }
}

type Place = PlaceView;
interface Order {
  orderNo: string;
  status: string;
  cancelReason?: string;
  paymentDeadline?: string;
}
/** One answer of the line, as the readings table shows it. */
interface Reading {
  atMs: number;
  state: Place['state'];
  position: number | null;
  ahead: number | null;
  etaMin: number | null;
  etaMax: number | null;
  etaEpoch: number;
  retryAfter: number | null;
}

const OPEN_ORDER = new Set(['PENDING', 'AWAITING_PAYMENT']);

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}
const input = (id: string) => $<HTMLInputElement>(id);
const button = (id: string) => $<HTMLButtonElement>(id);

function randomId(bytes = 8): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

const state = {
  /** The shopper and sale the page follows, their token (dev login), and the newest place read. */
  userId: '',
  sku: '',
  token: null as string | null,
  place: null as Place | null,
  /** When the newest place was read (performance.now()), for the countdown. */
  readAt: 0,
  /** When the page asks again (performance.now()); null: it does not. */
  nextReadAt: null as number | null,
  timer: undefined as ReturnType<typeof setTimeout> | undefined,
  /** A read is on its way. */
  asking: false,
  /** One Idempotency-Key per purchase: kept by every retry of it (a network error, a 503). */
  intent: null as { admission: string; key: string } | null,
  order: null as Order | null,
  reads: [] as Reading[],
};
window.lineDemo = { reads: state.reads };

function notice(message: string | null): void {
  $('notice').textContent = message ?? '';
  $('notice').hidden = message === null;
}

async function login(userId: string): Promise<string | null> {
  const reply = await api<{ token: string }>('POST', '/api/auth/dev-login', { body: { userId } });
  if (reply.status !== 200) {
    notice(
      reply.status === 404
        ? 'Dev login is off (AUTH_DEV_LOGIN=false): this demo needs it.'
        : `Dev login of ${userId}: ${reply.code ?? reply.status}`,
    );
    return null;
  }
  return reply.json.token;
}

/** Follows `userId` in `sku`'s line from now on (the address names both, for a reload or another device). */
async function follow(userId: string, sku: string): Promise<boolean> {
  if (!userId || !sku) {
    notice('Name a shopper and a sale.');
    return false;
  }
  stopReading();
  if (userId !== state.userId || sku !== state.sku) {
    state.token = null;
    state.place = null;
    state.order = null;
    state.intent = null;
    state.reads.length = 0;
    $('reads').replaceChildren();
    $('order').hidden = true;
  }
  state.userId = userId;
  state.sku = sku;
  const url = new URL(location.href);
  url.searchParams.set('sku', sku);
  url.searchParams.set('user', userId);
  history.replaceState(null, '', url);
  state.token ??= await login(userId);
  if (!state.token) return false;
  const sale = await api<{ name: string; available: number; stock: number }>(
    'GET',
    `/api/sales/${encodeURIComponent(sku)}`,
  );
  $('sale-info').textContent =
    sale.status === 200
      ? `${sale.json.name}: ${sale.json.available} of ${sale.json.stock} left`
      : `${sku}: ${sale.code ?? sale.status}`;
  return true;
}

async function join(): Promise<void> {
  notice(null);
  if (!(await follow(input('user-id').value.trim(), input('sku').value.trim()))) return;
  button('join').disabled = true;
  try {
    const reply = await api<Place>('POST', `/api/sales/${encodeURIComponent(state.sku)}/line`, {
      token: state.token ?? undefined,
    });
    answered(reply, 'join');
  } finally {
    button('join').disabled = false;
  }
}

async function read(): Promise<void> {
  // Also called out of turn (after a checkout): the read it replaces is not made as well.
  stopReading();
  if (!state.token) return;
  state.asking = true;
  const reply = await api<Place>('GET', `/api/sales/${encodeURIComponent(state.sku)}/line/me`, {
    token: state.token,
  });
  state.asking = false;
  answered(reply, 'read');
}

/** A join's or read's answer: the place shown, and the next read when `Retry-After` says. */
function answered(reply: Reply<Place>, what: 'join' | 'read'): void {
  if (reply.status === 200) {
    notice(null);
    state.place = reply.json;
    state.readAt = performance.now();
    record(reply.json, reply.retryAfter);
    // Retry-After is the line's word; refreshAfterSeconds says the same in the body. Null: nothing will change.
    const after = reply.retryAfter ?? reply.json.refreshAfterSeconds;
    if (after !== null) readIn(after);
    else stopReading();
    render();
    return;
  }
  const messages: Record<string, string> = {
    NOT_IN_LINE: 'You have no place in this line yet: join it.',
    NO_LINE: 'This sale has no waiting line: its checkout takes shoppers directly.',
    SKU_NOT_FOUND: `No sale has the SKU “${state.sku}”.`,
    LINE_NOT_OPEN: 'The line is not open yet.',
    SALE_NOT_ACTIVE: 'The sale has ended: its line takes nobody.',
    CHALLENGE_REQUIRED: "The line's bot check refused this join.",
    RATE_LIMITED: 'Too many requests: waiting as the API says.',
  };
  const code = reply.code ?? String(reply.status);
  notice(`${what}: ${messages[code] ?? code}${reply.retryAfter ? ` (asking again in ${reply.retryAfter} s)` : ''}`);
  if (code === 'NOT_IN_LINE') {
    state.place = null;
    render();
  }
  // A refusal with Retry-After (429, 503, not open yet) is asked again then; a network error in a few seconds.
  if (reply.retryAfter !== null) readIn(reply.retryAfter, what);
  else if (reply.status === 0 || reply.status >= 500) readIn(3, what);
  else stopReading();
}

function readIn(seconds: number, what: 'join' | 'read' = 'read'): void {
  stopReading();
  state.nextReadAt = performance.now() + seconds * 1_000;
  state.timer = setTimeout(() => void (what === 'join' ? join() : read()), seconds * 1_000);
}
function stopReading(): void {
  if (state.timer !== undefined) clearTimeout(state.timer);
  state.timer = undefined;
  state.nextReadAt = null;
}

function record(place: Place, retryAfter: number | null): void {
  const reading: Reading = {
    atMs: Date.now(),
    state: place.state,
    position: place.position,
    ahead: place.ahead,
    etaMin: place.eta?.minSeconds ?? null,
    etaMax: place.eta?.maxSeconds ?? null,
    etaEpoch: place.etaEpoch,
    retryAfter,
  };
  state.reads.push(reading);
  const tr = document.createElement('tr');
  tr.dataset.state = reading.state;
  const cells = [
    new Date(reading.atMs).toLocaleTimeString(),
    reading.state,
    reading.position ?? '—',
    reading.ahead ?? '—',
    reading.etaMin === null ? '—' : `${reading.etaMin}–${reading.etaMax}`,
    reading.retryAfter === null ? '—' : `${reading.retryAfter} s`,
  ];
  cells.forEach((value, i) => {
    const td = document.createElement('td');
    td.textContent = String(value);
    if (i >= 2) td.className = 'num';
    tr.append(td);
  });
  $('reads').prepend(tr);
}

const seconds = (value: number) => `${Math.max(0, Math.ceil(value))} s`;
const clock = (totalSeconds: number) => {
  const left = Math.max(0, Math.ceil(totalSeconds));
  return `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
};

/** The place as shown: its figures, the wait counted down since it was read, and what the shopper can do. */
function render(): void {
  const place = state.place;
  const box = $('place');
  box.dataset.state = place?.state ?? '';
  box.dataset.position = String(place?.position ?? '');
  box.dataset.ahead = String(place?.ahead ?? '');
  if (!place) {
    $('place-state').textContent = 'not in line';
    $('place-message').textContent = '';
    for (const id of ['place-position', 'place-ahead', 'place-eta']) $(id).textContent = '—';
    $('place-line').textContent = '';
    $('place-next').textContent = '';
    $('checkout-box').hidden = state.order === null;
    return;
  }
  const elapsed = (performance.now() - state.readAt) / 1_000;
  $('place-state').textContent = place.state.replace('_', ' ');
  $('place-position').textContent = place.position === null ? '—' : String(place.position);
  $('place-ahead').textContent = place.ahead === null ? '—' : String(place.ahead);
  const eta = $('place-eta');
  if (place.state === 'WAITING' && place.eta) {
    const low = place.eta.minSeconds - elapsed;
    const high = place.eta.maxSeconds - elapsed;
    eta.textContent = high <= 0 ? 'any moment' : `${seconds(low)}–${seconds(high)}`;
    eta.dataset.minSeconds = String(Math.max(0, Math.ceil(low)));
    eta.dataset.maxSeconds = String(Math.max(0, Math.ceil(high)));
  } else {
    eta.textContent = place.state === 'ADMITTED' ? 'now' : '—';
    delete eta.dataset.minSeconds;
    delete eta.dataset.maxSeconds;
  }
  $('place-message').textContent = messageOf(place);
  const served = place.position === null ? 0 : Math.min(place.servedThrough, place.position);
  $('place-progress').style.width = place.position ? `${(100 * served) / place.position}%` : '0';
  $('place-line').textContent =
    `${place.lineLength} in line, served through ${place.servedThrough}, ${place.admissionsPerSecond} admitted per second` +
    (place.etaRaisedBy === 'PAUSED'
      ? ' · the line was paused: waits told before went up'
      : place.etaRaisedBy === 'RATE_LOWERED'
        ? ' · the rate was lowered: waits told before went up'
        : '');
  $('place-next').textContent = state.asking
    ? 'asking now'
    : state.nextReadAt === null
      ? 'nothing more will change: not asking again'
      : `asking again in ${seconds((state.nextReadAt - performance.now()) / 1_000)}`;

  const admitted = place.state === 'ADMITTED' && place.admission !== null;
  $('checkout-box').hidden = !admitted && state.order === null;
  button('checkout').disabled = !admitted || state.order !== null;
  $('admission-expires').textContent =
    admitted && place.admission ? `within ${clock((Date.parse(place.admission.expiresAt) - Date.now()) / 1_000)}` : '';
  button('join').textContent = place.state === 'EXPIRED' ? 'Join again (a new place at the back)' : 'Join the line';
}

function messageOf(place: Place): string {
  switch (place.state) {
    case 'WAITING':
      if (place.preQueue)
        return place.startsAt
          ? `in the pre-queue: your place is drawn at random at the start, in ${clock((Date.parse(place.startsAt) - Date.now()) / 1_000)}`
          : 'in the pre-queue: your place is drawn at random at the start';
      if (place.waitTimeKnown) return '';
      return place.unitsMayComeBack
        ? 'behind the units left: your turn comes if units come back (unspent admissions, unpaid orders)'
        : 'the wait is not known yet';
    case 'ADMITTED':
      return 'it is your turn: check out before your admission runs out';
    case 'PAUSED':
      return 'the line is paused by the sale: your place is kept';
    case 'SOLD_OUT':
      return place.unitsMayComeBack
        ? 'sold out for now: unpaid orders may give units back, and the line goes on in order if they do'
        : 'sold out';
    case 'EXPIRED':
      return 'your admission ran out unused: join again for a new place at the back';
    case 'CHECKED_OUT':
      return 'your admission bought your order';
    case 'CLOSED':
      return 'the sale has ended';
  }
}

async function checkout(): Promise<void> {
  const place = state.place;
  if (!place?.admission || !state.token) return;
  if (state.intent?.admission !== place.admission.token)
    state.intent = { admission: place.admission.token, key: `line-${randomId()}` };
  const intent = state.intent;
  button('checkout').disabled = true;
  const reply = await api<Order>('POST', '/api/checkout', {
    body: { sku: state.sku, quantity: Number(input('qty').value) || 1 },
    token: state.token,
    headers: { 'Admission-Token': intent.admission, 'Idempotency-Key': intent.key, Prefer: 'wait=5' },
  });
  if ((reply.status === 201 || reply.status === 202) && reply.json.orderNo) {
    showOrder(reply.json);
    // The admission is spent: the place now says so.
    void read();
    void watchOrder();
    return;
  }
  notice(`check out: ${reply.code ?? reply.status}${reply.json.error ? `: ${reply.json.error.message}` : ''}`);
  // A network error or a 503 says "retry": the same purchase keeps its key. Any other answer ends it.
  if (reply.status !== 0 && reply.status !== 503) state.intent = null;
  render();
  button('checkout').disabled = false;
}

function showOrder(order: Order): void {
  state.order = order;
  $('order').hidden = false;
  $('order').dataset.status = order.status;
  $('order-no').textContent = order.orderNo;
  $('order-status').textContent = order.status;
  $('order-status').className = order.status;
  $('order-detail').textContent =
    order.status === 'AWAITING_PAYMENT' && order.paymentDeadline
      ? `pay within ${clock((Date.parse(order.paymentDeadline) - Date.now()) / 1_000)}`
      : order.cancelReason
        ? `(${order.cancelReason})`
        : '';
  $('pay').hidden = order.status !== 'AWAITING_PAYMENT';
  render();
}

/** Waits for the order's status to change (GET ?waitForChange=), again and again until it is final. */
async function watchOrder(): Promise<void> {
  while (state.order && OPEN_ORDER.has(state.order.status)) {
    const order = state.order;
    const reply = await api<Order>(
      'GET',
      `/api/orders/${order.orderNo}?waitForChange=${order.status}&timeoutSeconds=20`,
      { token: state.token ?? undefined },
    );
    if (state.order !== order) return;
    if (reply.status === 200) showOrder(reply.json);
    else await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
}

async function pay(): Promise<void> {
  const order = state.order;
  if (!order || !state.token) return;
  button('pay').disabled = true;
  const reply = await api<{ outcome?: string }>('POST', '/api/dev/simulate-payment', {
    body: { orderNo: order.orderNo },
    token: state.token,
  });
  button('pay').disabled = false;
  if (reply.status >= 300) notice(`pay: ${reply.code ?? reply.status}`);
}

async function init(): Promise<void> {
  const params = new URLSearchParams(location.search);
  input('user-id').value = params.get('user')?.trim() || `shopper-${randomId(2)}`;
  input('sku').value = params.get('sku')?.trim() ?? '';
  button('join').onclick = () => void join();
  button('checkout').onclick = () => void checkout();
  button('pay').onclick = () => void pay();
  const dev = await api<unknown>('GET', '/api/dev/config');
  if (dev.status !== 200) {
    notice('Dev login is off (AUTH_DEV_LOGIN=false): this demo logs shoppers in through it, so it cannot run here.');
    button('join').disabled = true;
  } else if (params.get('user') && params.get('sku')) {
    // A reload, or the same shopper on another device: the place is the one they hold.
    if (await follow(input('user-id').value.trim(), input('sku').value.trim())) await read();
  }
  render();
  setInterval(render, 250);
  document.body.dataset.ready = 'true';
}
void init();

export {};
