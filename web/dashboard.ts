/**
 * The live sale dashboard's script (served inside index.html by src/api/routes/dev.ts, which
 * bundles it: see src/api/scripted-pages.ts). It runs in the browser, so it is type-checked with
 * the DOM's types (./tsconfig.json) and imports only modules that import nothing (the order's
 * vocabulary, the sale's view, the reading of /metrics) and uPlot, which draws the charts; uPlot's
 * stylesheet is bundled into the page with it.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { SaleView as Sale } from '../src/sales/sale-view.js';
import { OPEN_STATUSES, STORED_ORDER_STATUSES, type OrderStatus } from '../src/model/order-rules.js';
import { CheckoutRates, parseScrape, type CheckoutFigures, type Scrape } from './checkout-metrics.js';
import { api as call, type ErrorBody, type Reply } from './api-client.js';
import type { LineView } from '../src/line/line-views.js';
import { AdmissionRate, EtaErrors, parseEtaError, secondsToSoldOut, type EtaErrorFigures } from './line-metrics.js';
import {
  PaymentSignalLatency,
  parsePaymentSignals,
  workerCacheTotals,
  type PaymentSignalFigures,
  type WorkerCacheReport,
} from './worker-metrics.js';
import { deliveryTotals, formatAge, type EndpointReport } from './delivery-metrics.js';

declare global {
  interface Window {
    /** The charts' uPlot instances, by name: their `data` is what they draw (read by the browser test). */
    dashboardCharts?: Record<ChartName, uPlot>;
  }
}

/** The element with that id; the page declares every one the script uses, so a missing one is a bug. */
function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}
const input = (id: string) => $<HTMLInputElement>(id);
const button = (id: string) => $<HTMLButtonElement>(id);

const OPEN = new Set<string>(OPEN_STATUSES);

/** The API's answers, as far as the page reads them (the OpenAPI document at /openapi.json has them all). */
interface SaleStats {
  mysql: { orders: Record<(typeof STORED_ORDER_STATUSES)[number], number>; units: Record<string, number> };
  runningWorkflows: number;
  payments: Record<string, number>;
  drift: Record<'available' | 'reserved' | 'sold', number>;
}
interface OrderAnswer {
  orderNo: string;
  status: OrderStatus;
  cancelReason?: string;
  paymentDeadline?: string;
  quantity?: number;
}
interface DevConfig {
  temporalUiUrl: string | null;
  namespace: string;
  devAdminToken: string | null;
}
/** Whatever a call answered: every field the page may read, all optional. */
type Answer = ErrorBody &
  Partial<OrderAnswer> &
  Partial<Sale> & { items?: Sale[]; token?: string; outcome?: string; statusUrl?: string } & Partial<SaleStats> &
  Partial<DevConfig>;

/** An order this page placed, with its row in the orders table. */
interface PageOrder {
  orderNo: string;
  userId: string;
  token: string;
  quantity: number;
  status: OrderStatus;
  cancelReason?: string;
  paymentDeadline?: string;
  row: HTMLTableRowElement;
  busy?: boolean;
  watched?: boolean;
}

const state = {
  sku: null as string | null,
  /** From GET /api/dev/config; null without dev login. */
  dev: null as DevConfig | null,
  /** userId → shopper token (dev login). */
  tokens: new Map<string, string>(),
  orders: new Map<string, PageOrder>(),
  counters: { accepted: 0, soldOut: 0 },
  /** For the per-second rates. */
  history: [] as Array<{ t: number; accepted: number; soldOut: number }>,
  /** The purchase being prepared. */
  intent: null as { key: string; sku: string | null; userId: string; quantity: number } | null,
};

function log(line: string): void {
  $('log').textContent = `${new Date().toLocaleTimeString()} ${line}\n` + ($('log').textContent ?? '').slice(0, 5000);
}
function randomId(bytes = 8): string {
  // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}
function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
/** A call whose answer the page reads loosely (every field it may read, all optional), unless it names one. */
const api = <T = Answer>(...args: Parameters<typeof call>) => call<T>(...args);
const adminToken = () => input('admin-token').value.trim();

// ---- the sale ---------------------------------------------------------------------------------
async function loadSales(): Promise<void> {
  if (!adminToken()) return;
  const { status, json } = await api<{ items: Sale[] }>('GET', '/api/admin/sales?limit=200', { token: adminToken() });
  if (status !== 200) return log(`sales list: ${status} ${json.error?.code ?? ''}`);
  const picker = $<HTMLSelectElement>('sale-picker');
  const chosen = state.sku;
  picker.replaceChildren(new Option('— sales (admin) —', ''));
  for (const sale of json.items) picker.add(new Option(`${sale.sku} — ${sale.name} (${sale.stock})`, sale.sku));
  if (chosen) picker.value = chosen;
}
function watch(sku: string): void {
  if (!sku) return;
  notice(null);
  const changed = sku !== state.sku;
  state.sku = sku;
  $('watching').textContent = `watching ${sku}`;
  input('sku-input').value = sku;
  $<HTMLSelectElement>('sale-picker').value = sku;
  button('close-sale').disabled = !adminToken();
  // The address names the sale watched, so a reload or a shared link opens it again.
  const url = new URL(location.href);
  url.searchParams.set('sku', sku);
  history.replaceState(null, '', url);
  prepareIntent();
  if (!changed) return;
  resetCharts();
  void sample();
}
/** Watches `sku` if the API knows the sale; otherwise says so and keeps what was watched. */
async function open(sku: string): Promise<void> {
  if (!sku) return;
  const { status, json } = await api<Sale>('GET', `/api/sales/${encodeURIComponent(sku)}`);
  if (status === 200) return watch(json.sku);
  notice(
    status === 404
      ? `No sale has the SKU “${sku}”. Check it, or pick a sale from the list (it needs the admin token).`
      : `Could not open the sale “${sku}”: ${json.error?.code ?? status}.`,
  );
}
/** The message above the page (null hides it). */
function notice(message: string | null): void {
  const box = $('notice');
  box.textContent = message ?? '';
  box.hidden = message === null;
}
button('watch').onclick = () => void open(input('sku-input').value.trim());
$<HTMLSelectElement>('sale-picker').onchange = () => watch($<HTMLSelectElement>('sale-picker').value);
input('admin-token').onchange = () => {
  button('close-sale').disabled = !adminToken() || !state.sku;
  void loadSales();
};
button('create-sale').onclick = async () => {
  const sale = {
    sku: input('new-sku').value.trim(),
    name: input('new-name').value.trim() || 'Flash sale',
    stock: Number(input('new-stock').value),
    perUserLimit: Number(input('new-limit').value),
    priceCents: Number(input('new-price').value),
    ...(input('new-line').checked ? { line: { admissionsPerSecond: Number(input('new-line-rate').value) } } : {}),
  };
  const { status, json } = await api('POST', '/api/sales', { body: sale, token: adminToken() });
  log(`create sale ${sale.sku}: ${status}${json.error ? ` ${json.error.code}: ${json.error.message}` : ''}`);
  if (status !== 201) return;
  await loadSales();
  watch(sale.sku);
};
button('close-sale').onclick = async () => {
  const sku = state.sku;
  if (!sku || !confirm(`Close ${sku} now? Checkouts are refused from then on; placed orders run to their end.`)) return;
  const { status, json } = await api<Sale>('POST', `/api/admin/sales/${encodeURIComponent(sku)}/close`, {
    token: adminToken(),
  });
  log(`close ${sku}: ${status}${json.endsAt ? ` ends ${json.endsAt}` : ` ${json.error?.code}`}`);
};

/** One row per stored status, in the vocabulary's order: the order counts and units of the admin stats. */
function renderStatusRows(): void {
  $('status-figures').replaceChildren(
    ...STORED_ORDER_STATUSES.map((status) => {
      const tr = document.createElement('tr');
      tr.innerHTML = `<td></td><td class="num">—</td><td class="num">—</td>`;
      const [name, count, units] = Array.from(tr.cells);
      if (name) {
        name.className = status;
        name.textContent = status;
      }
      if (count) count.id = `count-${status}`;
      if (units) units.id = `units-${status}`;
      return tr;
    }),
  );
}

let sampling: Promise<void> | null = null;
/**
 * One sample of the sale, taken about every second: its figures on the cards and a new point on
 * each chart. The sale view (Redis) and the admin stats (MySQL, Temporal) are sale-wide; /metrics
 * is the answering API process's.
 */
function sample(): Promise<void> {
  // One at a time: a sale picked between two ticks must not add a second point a moment later.
  sampling ??= takeSample().finally(() => (sampling = null));
  return sampling;
}
async function takeSample(): Promise<void> {
  const sku = state.sku;
  if (!sku) return;
  const path = encodeURIComponent(sku);
  const token = adminToken();
  const [sale, stats, metrics, line] = await Promise.all([
    api<Sale>('GET', `/api/sales/${path}`),
    token ? api<SaleStats>('GET', `/api/admin/sales/${path}/stats`, { token }) : null,
    scrapeMetrics(sku),
    api<LineView>('GET', `/api/sales/${path}/line`),
  ]);
  if (sku !== state.sku) return;
  showSale(sku, sale);
  showStats(stats);
  const scrape = metrics?.checkout ?? null;
  showLine(sku, line, sale.status === 200 ? sale.json : null, metrics ? etaErrors.add(metrics.eta) : null);
  const checkouts = scrape ? checkoutRates.add(scrape) : null;
  addPoint(
    Date.now() / 1000,
    sale.status === 200 ? sale.json : null,
    stats?.status === 200 ? stats.json : null,
    checkouts,
    scrape !== null,
  );
}

function showSale(sku: string, { status, json }: Reply<Sale>): void {
  if (status !== 200) {
    $('sale-info').textContent = `${sku}: ${json.error?.code ?? status}`;
    return;
  }
  $('stock-total').textContent = String(json.stock);
  $('stock-available').textContent = String(json.available);
  $('stock-reserved').textContent = String(json.reserved);
  $('stock-sold').textContent = String(json.sold);
  $('bar-sold').style.width = `${(100 * json.sold) / json.stock}%`;
  $('bar-reserved').style.width = `${(100 * json.reserved) / json.stock}%`;
  const ended = json.endsAt && Date.parse(json.endsAt) <= Date.now();
  $('sale-info').textContent =
    `${json.name} · ${(json.priceCents / 100).toFixed(2)} · at most ${json.perUserLimit} per shopper · ` +
    (ended && json.endsAt
      ? `closed at ${new Date(json.endsAt).toLocaleTimeString()}`
      : json.endsAt
        ? `ends ${new Date(json.endsAt).toLocaleString()}`
        : 'no end');
  $('stock-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function showStats(stats: Reply<SaleStats> | null): void {
  if (!stats) return;
  if (stats.status !== 200) {
    $('stats-note').textContent = `admin stats: ${stats.code ?? stats.status}`;
    return;
  }
  for (const s of STORED_ORDER_STATUSES) {
    $(`count-${s}`).textContent = String(stats.json.mysql.orders[s]);
    $(`units-${s}`).textContent = String(stats.json.mysql.units[s]);
  }
  $('running-workflows').textContent = String(stats.json.runningWorkflows);
  // Refunds waiting: to make (REFUND_REQUIRED; through Stripe the workers ask) and asked of the provider.
  const payments = stats.json.payments;
  const count = (outcome: string) => payments[outcome] ?? 0;
  $('payments-applied').textContent = String(count('APPLIED'));
  $('refunds-waiting').textContent = String(count('REFUND_REQUIRED') + count('REFUND_REQUESTED'));
  $('refunds-done').textContent = String(count('REFUNDED'));
  $('refunds-failed').textContent = String(count('REFUND_FAILED'));
  for (const k of ['available', 'reserved', 'sold'] as const) $(`drift-${k}`).textContent = String(stats.json.drift[k]);
  $('stats-note').textContent = `MySQL rows and Temporal visibility, ${new Date().toLocaleTimeString()}`;
}

/**
 * This API process's Prometheus counters, or null when /metrics is not reachable (blocked at the load balancer, say).
 */
async function scrapeMetrics(sku: string): Promise<{ checkout: Scrape; eta: ReturnType<typeof parseEtaError> } | null> {
  try {
    const res = await fetch('/metrics');
    if (!res.ok) return null;
    const text = await res.text();
    const now = Date.now();
    return { checkout: parseScrape(text, now), eta: parseEtaError(text, now, sku) };
  } catch {
    return null;
  }
}

// ---- the sale's waiting line ---------------------------------------------------------------------
const etaErrors = new EtaErrors();
const admissionRate = new AdmissionRate();
/** The line's panel, shown while the watched sale has a line (404 NO_LINE hides it). */
function showLine(sku: string, reply: Reply<LineView>, sale: Sale | null, eta: EtaErrorFigures | null): void {
  const panel = $('line-panel');
  if (reply.status !== 200) {
    // NO_LINE, or an unknown sale: no panel. Anything else (a 503) leaves the last figures, marked stale.
    if (reply.status === 404) {
      panel.hidden = true;
      panel.dataset.state = '';
      admissionRate.reset();
    } else if (!panel.hidden) {
      $('line-note').textContent = `line: ${reply.code ?? reply.status} at ${new Date().toLocaleTimeString()}`;
    }
    return;
  }
  const line = reply.json;
  panel.hidden = false;
  panel.dataset.state = line.state;
  $('line-state').textContent = line.state;
  $('line-paused').textContent = line.paused
    ? 'paused by an operator: nobody is admitted'
    : line.epochReason === 'RATE_LOWERED'
      ? 'rate lowered: waits told before went up'
      : '';
  $('line-length').textContent = String(line.length);
  $('line-served').textContent = String(line.servedThrough);
  $('line-rate').textContent = String(line.admissionsPerSecond);
  const measured = admissionRate.add(Date.now(), line.admitted);
  $('line-rate-measured').textContent = measured === null ? '—' : measured.toFixed(1);
  $('line-admitted').textContent = String(line.admitted);
  $('line-consumed').textContent = String(line.consumed);
  $('line-given-back').textContent = String(line.givenBack);
  const soldOut = secondsToSoldOut(line, sale?.createdAt ?? null);
  $('line-sold-out-after').textContent = soldOut ? `${soldOut.seconds.toFixed(1)} s` : 'not sold out';
  $('line-sold-out-from').textContent = soldOut
    ? soldOut.from === 'startsAt'
      ? "(from the sale's start)"
      : '(from its creation: the sale has no startsAt)'
    : '';
  const seconds = (value: number | null) => (value === null ? '—' : `${value.toFixed(1)} s`);
  $('line-eta-p50').textContent = seconds(eta?.p50Seconds ?? null);
  $('line-eta-p90').textContent = seconds(eta?.p90Seconds ?? null);
  $('line-eta-count').textContent = eta ? `(${eta.count} admitted)` : '(GET /metrics did not answer)';
  $('line-eta-count').dataset.count = String(eta?.count ?? '');
  const rateInput = input('line-rate-input');
  if (!rateInput.value || document.activeElement !== rateInput) rateInput.value = String(line.admissionsPerSecond);
  const admin = Boolean(adminToken());
  button('line-pause').disabled = !admin || line.paused;
  button('line-resume').disabled = !admin || !line.paused;
  button('line-set-rate').disabled = !admin;
  $('line-note').textContent = admin
    ? `updated ${new Date().toLocaleTimeString()}`
    : 'the operator buttons need the admin token';
  $<HTMLAnchorElement>('line-demo-link').href = `/line-demo?sku=${encodeURIComponent(sku)}`;
}
/** An operator's change to the line (POST /api/admin/sales/:sku/line), then a fresh sample. */
async function controlLine(change: { paused?: boolean; admissionsPerSecond?: number }): Promise<void> {
  const sku = state.sku;
  if (!sku) return log('pick a sale first');
  const { status, json } = await api<LineView>('POST', `/api/admin/sales/${encodeURIComponent(sku)}/line`, {
    body: change,
    token: adminToken(),
  });
  log(
    `line of ${sku} ${JSON.stringify(change)} → ${status}` +
      (status === 200
        ? ` ${json.state}, ${json.admissionsPerSecond}/s${json.paused ? ', paused' : ''}`
        : ` ${json.error?.code ?? ''}`),
  );
  await sample();
}
button('line-pause').onclick = () => void controlLine({ paused: true });
button('line-resume').onclick = () => void controlLine({ paused: false });
button('line-set-rate').onclick = () => {
  const rate = Number(input('line-rate-input').value);
  if (!Number.isInteger(rate) || rate < 1) return log('the admission rate is a whole number of at least 1');
  void controlLine({ admissionsPerSecond: rate });
};

// ---- the workers -------------------------------------------------------------------------------
const paymentSignals = new PaymentSignalLatency();
/**
 * The Worker panel, every 2 s whether a sale is watched or not: the workers' workflow cache (GET /api/admin/workers,
 * which relays what each worker publishes through Redis; the API cannot reach the workers) and the payment Signal's
 * latency (the answering API process's /metrics). A worker that stopped is not listed; a source that did not answer
 * leaves its figures out, with a note.
 */
async function sampleWorkers(): Promise<void> {
  const token = adminToken();
  const [workers, metrics] = await Promise.all([
    token ? api<{ workers: WorkerCacheReport[] }>('GET', '/api/admin/workers', { token }) : null,
    metricsText(),
  ]);
  showWorkers(workers);
  showPaymentSignals(metrics ? paymentSignals.add(parsePaymentSignals(metrics.text, metrics.atMs)) : null);
}
/** GET /metrics as text, or null when it does not answer within 3 s (blocked at the load balancer, say). */
async function metricsText(): Promise<{ text: string; atMs: number } | null> {
  try {
    const res = await fetch('/metrics', { signal: AbortSignal.timeout(3_000) });
    return res.ok ? { text: await res.text(), atMs: Date.now() } : null;
  } catch {
    return null;
  }
}
const percent = (value: number | null) => (value === null ? '—' : `${(value * 100).toFixed(1)} %`);
const perSecond = (value: number | null) => (value === null ? '—' : value.toFixed(1));
function showWorkers(reply: Reply<{ workers: WorkerCacheReport[] }> | null): void {
  const panel = $('worker-panel');
  if (!reply || reply.status !== 200) {
    // No token, or Redis did not answer: the last figures stay, marked as such.
    $('worker-note').textContent = reply
      ? `workers: ${reply.code ?? reply.status} at ${new Date().toLocaleTimeString()}`
      : 'the workers need the admin token';
    return;
  }
  const workers = reply.json.workers;
  const totals = workerCacheTotals(workers);
  panel.dataset.workers = String(totals.workers);
  $('worker-cached').textContent = totals.workers ? String(totals.cached) : '—';
  $('worker-max-cached').textContent = totals.workers ? String(totals.maxCached) : '—';
  $('worker-hit-rate').textContent = percent(totals.hitRate);
  $('worker-evictions').textContent = perSecond(totals.evictionsPerSecond);
  $('worker-count').textContent = String(totals.workers);
  $('worker-rows').replaceChildren(
    ...workers.map((worker) => {
      const one = workerCacheTotals([worker]);
      const tr = document.createElement('tr');
      tr.dataset.worker = worker.worker;
      tr.innerHTML = `<td></td><td class="num"></td><td class="num"></td><td class="num"></td>`;
      const [name, cached, hitRate, evictions] = Array.from(tr.cells);
      if (name) name.textContent = worker.worker;
      if (cached) cached.textContent = `${worker.cached} / ${worker.maxCached}`;
      if (hitRate) hitRate.textContent = percent(one.hitRate);
      if (evictions) evictions.textContent = perSecond(one.evictionsPerSecond);
      return tr;
    }),
  );
  const spans = workers.flatMap((worker) => (worker.interval ? [worker.interval.seconds] : []));
  $('worker-note').textContent = workers.length
    ? `hit rate and evictions over each worker's last ${spans.length ? `${Math.round(Math.max(...spans))} s` : 'report'}; ` +
      `updated ${new Date().toLocaleTimeString()}`
    : 'no worker is reporting (none running, or none can reach Redis)';
}
function showPaymentSignals(figures: PaymentSignalFigures | null): void {
  const counts = $('payment-signal-counts');
  if (!figures) {
    counts.textContent = '(GET /metrics did not answer)';
    return;
  }
  const ms = (seconds: number | null) => (seconds === null ? '—' : `${(seconds * 1_000).toFixed(1)} ms`);
  $('payment-signal-p50').textContent = ms(figures.p50Seconds);
  $('payment-signal-p99').textContent = ms(figures.p99Seconds);
  const { signalled, timeout, error, no_workflow: none } = figures.counts;
  counts.dataset.signalled = String(signalled);
  counts.textContent =
    `(${signalled} signalled, ${timeout} timed out, ${error} failed, ${none} without a running workflow; ` +
    `last ${Math.round(figures.spanSeconds)} s, ${figures.processes} API process${figures.processes === 1 ? '' : 'es'})`;
}

// ---- order events' deliveries ------------------------------------------------------------------
/**
 * The Order events panel, every 2 s: the merchants' endpoints with their deliveries' figures (GET
 * /api/admin/webhook-endpoints, MySQL's), summed. Without the token, or without an answer, the last figures stay.
 */
async function sampleDeliveries(): Promise<void> {
  const token = adminToken();
  showDeliveries(
    token ? await api<{ items: EndpointReport[] }>('GET', '/api/admin/webhook-endpoints', { token }) : null,
  );
}
function showDeliveries(reply: Reply<{ items: EndpointReport[] }> | null): void {
  if (!reply || reply.status !== 200) {
    $('deliveries-note').textContent = reply
      ? `endpoints: ${reply.code ?? reply.status} at ${new Date().toLocaleTimeString()}`
      : 'the deliveries need the admin token';
    return;
  }
  const endpoints = reply.json.items;
  const now = Date.now();
  const totals = deliveryTotals(endpoints, now);
  $('deliveries-panel').dataset.endpoints = String(totals.endpoints);
  $('deliveries-sent').textContent = String(totals.sent);
  $('deliveries-failing').textContent = String(totals.failing);
  $('deliveries-pending').textContent = String(totals.pending);
  $('deliveries-given-up').textContent = String(totals.gaveUp);
  $('deliveries-oldest').textContent = formatAge(totals.oldestPendingSeconds);
  $('endpoints-disabled').textContent = String(totals.disabled);
  $('endpoints-count').textContent = String(totals.endpoints);
  $('endpoint-rows').replaceChildren(
    ...endpoints.map((endpoint) => {
      const one = deliveryTotals([endpoint], now);
      const tr = document.createElement('tr');
      tr.dataset.endpoint = endpoint.endpointId;
      tr.dataset.enabled = String(endpoint.enabled);
      tr.innerHTML = `<td class="url"></td><td class="num"></td><td class="num"></td><td class="num"></td>`;
      const [name, sent, failing, gaveUp] = Array.from(tr.cells);
      if (name) {
        name.textContent = endpoint.enabled ? endpoint.url : `${endpoint.url} (disabled)`;
        name.title = endpoint.endpointId;
      }
      if (sent) sent.textContent = String(one.sent);
      if (failing) failing.textContent = `${one.failing} / ${one.pending}`;
      if (gaveUp) gaveUp.textContent = String(one.gaveUp);
      return tr;
    }),
  );
  $('deliveries-note').textContent = endpoints.length
    ? `deliveries kept for EVENTS_RETENTION; failing: owed and tried at least once; updated ${new Date(now).toLocaleTimeString()}`
    : 'no endpoint is subscribed (POST /api/admin/webhook-endpoints)';
}

// ---- charts of the last minutes ----------------------------------------------------------------
/** The charts' window: the points older than this are dropped. */
const WINDOW_SECONDS = 300;
/** The shortest span a chart shows, so that the first seconds of a sale are not stretched across it. */
const MIN_SPAN_SECONDS = 60;
const CHART_HEIGHT = 190;
type ChartName = 'stock' | 'rates' | 'orders' | 'latency';
interface SeriesSpec {
  label: string;
  stroke: string;
  dash?: number[];
  digits?: number;
}
const CHARTS: Record<ChartName, SeriesSpec[]> = {
  stock: [
    { label: 'available', stroke: '#1a56db' },
    { label: 'reserved', stroke: '#e3a008' },
    { label: 'sold', stroke: '#137333' },
  ],
  rates: [
    { label: 'accepted', stroke: '#137333', digits: 1 },
    { label: 'sold out', stroke: '#6b7280', digits: 1 },
    { label: 'limit reached', stroke: '#7e3af2', digits: 1 },
    { label: 'refused (other 4xx)', stroke: '#d97706', digits: 1 },
    { label: 'unavailable (5xx)', stroke: '#b3261e', digits: 1 },
    { label: 'units taken, net (sale-wide)', stroke: '#1a56db', dash: [6, 4], digits: 1 },
  ],
  orders: [
    { label: 'PENDING (units, no row yet)', stroke: '#8a5a00', dash: [6, 4] },
    { label: 'AWAITING_PAYMENT', stroke: '#e3a008' },
    { label: 'PAID', stroke: '#137333' },
    { label: 'CANCELLED', stroke: '#b3261e' },
    { label: 'FAILED', stroke: '#5b1a14' },
    { label: 'DISPUTED (money contested)', stroke: '#c2410c', dash: [2, 3] },
    { label: 'REFUNDED (money back at the provider)', stroke: '#6b21a8', dash: [2, 3] },
  ],
  latency: [
    { label: 'p99, every answer', stroke: '#1d2330', digits: 1 },
    { label: 'p99, accepted', stroke: '#137333', digits: 1 },
  ],
};
/** Per chart: the times (unix seconds) and one column per series, the form uPlot draws. */
const columns = {} as Record<ChartName, Array<Array<number | null>>>;
const checkoutRates = new CheckoutRates();
/** The previous stock sample, for the units taken per second. */
let lastStock: { t: number; available: number } | null = null;
let samples = 0;

function createCharts(): Record<ChartName, uPlot> {
  const charts = {} as Record<ChartName, uPlot>;
  for (const name of Object.keys(CHARTS) as ChartName[]) {
    const box = $(`chart-${name}`);
    columns[name] = [[], ...CHARTS[name].map(() => [])];
    const plot = new uPlot(
      {
        width: Math.max(box.clientWidth, 200),
        height: CHART_HEIGHT,
        series: [
          {},
          ...CHARTS[name].map((spec) => ({
            label: spec.label,
            stroke: spec.stroke,
            width: 2,
            ...(spec.dash ? { dash: spec.dash } : {}),
            // Undefined when the legend points past the data (the charts emptied for another sale).
            value: (_plot: uPlot, value: number | null | undefined) =>
              typeof value === 'number' ? value.toFixed(spec.digits ?? 0) : '—',
          })),
        ],
        scales: {
          // A young history fills the chart from the left; a full one scrolls left as time passes.
          x: {
            time: true,
            range: (_plot, min, max) => {
              if (!Number.isFinite(min) || !Number.isFinite(max)) {
                const now = Date.now() / 1000;
                return [now - MIN_SPAN_SECONDS, now];
              }
              if (max - min < MIN_SPAN_SECONDS) return [min, min + MIN_SPAN_SECONDS];
              return [max - Math.min(WINDOW_SECONDS, max - min), max];
            },
          },
          y: { range: (_plot, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        axes: [{}, { size: 56 }],
        // A chart that moves every second is read, not zoomed.
        cursor: { drag: { x: false, y: false } },
      },
      columns[name] as uPlot.AlignedData,
      box,
    );
    new ResizeObserver(() => {
      if (box.clientWidth > 0 && box.clientWidth !== plot.width)
        plot.setSize({ width: box.clientWidth, height: CHART_HEIGHT });
    }).observe(box);
    charts[name] = plot;
  }
  return charts;
}
const charts = createCharts();
window.dashboardCharts = charts;

function resetCharts(): void {
  for (const name of Object.keys(CHARTS) as ChartName[]) {
    columns[name] = [[], ...CHARTS[name].map(() => [])];
    charts[name].setData(columns[name] as uPlot.AlignedData);
  }
  lastStock = null;
  admissionRate.reset();
  samples = 0;
  $('history-charts').dataset.samples = '0';
}

/** One point on every chart at `t`; a figure its source did not answer is a gap. */
function addPoint(
  t: number,
  sale: Sale | null,
  stats: SaleStats | null,
  checkouts: CheckoutFigures | null,
  metricsReached: boolean,
): void {
  let taken: number | null = null;
  if (sale) {
    if (lastStock && t > lastStock.t) taken = (lastStock.available - sale.available) / (t - lastStock.t);
    lastStock = { t, available: sale.available };
  }
  const rates = checkouts?.perSecond;
  const points: Record<ChartName, Array<number | null>> = {
    stock: sale ? [sale.available, sale.reserved, sale.sold] : [null, null, null],
    rates: [
      rates?.accepted ?? null,
      rates?.soldOut ?? null,
      rates?.limit ?? null,
      rates?.refused ?? null,
      rates?.unavailable ?? null,
      taken,
    ],
    orders: stats
      ? [Math.max(0, stats.drift.reserved), ...STORED_ORDER_STATUSES.map((status) => stats.mysql.orders[status])]
      : CHARTS.orders.map(() => null),
    latency: [checkouts?.p99Ms.all ?? null, checkouts?.p99Ms.accepted ?? null],
  };
  for (const name of Object.keys(CHARTS) as ChartName[]) {
    const [times = [], ...values] = columns[name];
    times.push(t);
    values.forEach((column, i) => column.push(points[name][i] ?? null));
    // Drop what left the window (the oldest points are first).
    const keep = times.findIndex((time) => time !== null && time >= t - WINDOW_SECONDS);
    if (keep > 0) for (const column of columns[name]) column.splice(0, keep);
    const plot = charts[name];
    plot.setData(columns[name] as uPlot.AlignedData);
    // The legend shows the newest values unless the pointer is on the chart (uPlot's cursor).
    if ((plot.cursor.left ?? -1) < 0) plot.setLegend({ idx: times.length - 1 });
  }
  samples++;
  $('history-charts').dataset.samples = String(samples);
  $('orders-source').textContent = stats
    ? 'sale-wide: MySQL rows by status (admin stats); PENDING: units Redis holds reserved that no row has yet'
    : 'sale-wide, from the admin stats: needs the admin token';
  const perProcess = metricsReached
    ? `per API process (GET /metrics), all sales; ${checkouts ? `summed over ${checkouts.processes} process${checkouts.processes === 1 ? '' : 'es'}` : 'from the second scrape on'}`
    : 'GET /metrics did not answer (blocked at the load balancer?): no per-process figures';
  $('rates-source').textContent = `${perProcess}; units taken: sale-wide, Redis`;
  $('latency-source').textContent = `ms, from the latency histogram's buckets; ${perProcess}`;
}

// ---- shoppers and checkouts --------------------------------------------------------------------
async function tokenFor(userId: string): Promise<string> {
  let token = state.tokens.get(userId);
  if (!token) {
    const { status, json } = await api<{ token: string }>('POST', '/api/auth/dev-login', { body: { userId } });
    if (status !== 200) throw new Error(`dev login of ${userId}: ${json.error?.code ?? status}`);
    token = json.token;
    state.tokens.set(userId, token);
  }
  return token;
}

/**
 * One checkout. `Prefer: wait=5` lets a server that supports it answer 201 with the persisted
 * order; one that does not answers 202 {orderNo, status: PENDING}: both are handled.
 */
async function checkout(
  userId: string,
  sku: string,
  quantity: number,
  idempotencyKey: string,
): Promise<Reply<Partial<OrderAnswer>>> {
  const token = await tokenFor(userId);
  const reply = await api<Partial<OrderAnswer>>('POST', '/api/checkout', {
    body: { sku, quantity },
    token,
    headers: { 'Idempotency-Key': idempotencyKey, Prefer: 'wait=5' },
  });
  const { orderNo, status } = reply.json;
  if ((reply.status === 201 || reply.status === 202) && orderNo && status) {
    if (!state.orders.has(orderNo)) state.counters.accepted++;
    upsertOrder({ userId, quantity, token, ...reply.json, orderNo, status });
  } else if (reply.code === 'SOLD_OUT') {
    state.counters.soldOut++;
  }
  return reply;
}

// One Idempotency-Key per purchase intent: made when the purchase is prepared, reused by every
// click (a double click, a retry after a network error or 503) until an answer comes, so the
// same purchase can never be bought twice.
function prepareIntent(): void {
  state.intent = {
    key: `buy-${randomId()}`,
    sku: state.sku,
    userId: input('buyer').value.trim(),
    quantity: Number(input('qty').value),
  };
  $('intent-key').textContent = state.intent.key;
}
for (const id of ['buyer', 'qty']) input(id).addEventListener('input', prepareIntent);
button('buy').onclick = async () => {
  const intent = state.intent;
  if (!state.sku || !intent?.sku) return log('pick a sale first');
  let reply;
  try {
    reply = await checkout(intent.userId, intent.sku, intent.quantity, intent.key);
  } catch (err) {
    return log(messageOf(err));
  }
  log(`buy ${intent.userId} → ${reply.status} ${reply.json.orderNo ?? reply.code ?? ''}`);
  // A network error or 503 says "retry": the same intent keeps its key. Any other answer ends it.
  if (reply.status !== 0 && reply.status !== 503 && state.intent === intent) prepareIntent();
};

button('burst').onclick = async () => {
  const sku = state.sku;
  if (!sku) return log('pick a sale first');
  const n = Math.max(1, Math.min(500, Number(input('burst-n').value) || 1));
  const run = randomId(3);
  const users = Array.from({ length: n }, (_, i) => `burst-${run}-${i + 1}`);
  button('burst').disabled = true;
  try {
    await Promise.all(users.map((u) => tokenFor(u)));
    const replies = await Promise.all(users.map((u) => checkout(u, sku, 1, `burst-${randomId()}`)));
    const outcomes = new Map<string, number>();
    for (const r of replies) {
      const key = r.status === 201 || r.status === 202 ? `accepted (${r.status})` : `${r.status} ${r.code}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    $('burst-outcomes').replaceChildren(
      ...[...outcomes].map(([outcome, count]) => {
        const tr = document.createElement('tr');
        tr.dataset.outcome = outcome;
        tr.innerHTML = `<td></td><td class="num"></td>`;
        const [name, number] = Array.from(tr.cells);
        if (name) name.textContent = outcome;
        if (number) number.textContent = String(count);
        return tr;
      }),
    );
    log(`burst of ${n} on ${sku}: ${[...outcomes].map(([o, c]) => `${o} × ${c}`).join(', ')}`);
  } catch (err) {
    log(`burst failed: ${messageOf(err)}`);
  } finally {
    button('burst').disabled = false;
  }
};

// ---- this page's orders ------------------------------------------------------------------------
function workflowUrl(orderNo: string): string | null {
  if (!state.dev?.temporalUiUrl) return null;
  return `${state.dev.temporalUiUrl}/namespaces/${encodeURIComponent(state.dev.namespace)}/workflows/order-${orderNo}`;
}
function upsertOrder(update: Partial<PageOrder> & OrderAnswer): void {
  let order = state.orders.get(update.orderNo);
  if (!order) {
    const row = document.createElement('tr');
    order = {
      orderNo: update.orderNo,
      userId: update.userId ?? '',
      token: update.token ?? '',
      quantity: update.quantity ?? 0,
      status: 'PENDING',
      row,
    };
    renderRow(order);
    state.orders.set(order.orderNo, order);
    $('orders').prepend(order.row);
  }
  if (update.status !== undefined) order.status = update.status;
  if (update.cancelReason !== undefined) order.cancelReason = update.cancelReason;
  if (update.paymentDeadline !== undefined) order.paymentDeadline = update.paymentDeadline;
  if (update.quantity !== undefined) order.quantity = update.quantity;
  refreshRow(order);
}
/** The query of a row's cell, which renderRow put there. */
function cell<T extends HTMLElement = HTMLElement>(row: HTMLTableRowElement, selector: string): T {
  const element = row.querySelector<T>(selector);
  if (!element) throw new Error(`an order row has no ${selector}`);
  return element;
}
function renderRow(order: PageOrder): void {
  const tr = order.row;
  tr.dataset.orderNo = order.orderNo;
  tr.innerHTML = `<td><a class="wf" target="_blank" rel="noopener"></a></td><td class="user"></td><td class="num qty"></td>
    <td class="status"></td><td class="deadline num"></td>
    <td><button class="pay">Pay</button><button class="cancel secondary">Cancel</button></td>`;
  const link = cell<HTMLAnchorElement>(tr, 'a.wf');
  link.textContent = order.orderNo;
  const url = workflowUrl(order.orderNo);
  if (url) link.href = url;
  cell(tr, '.user').textContent = order.userId;
  cell(tr, '.pay').onclick = () => act(order, 'pay');
  cell(tr, '.cancel').onclick = () => act(order, 'cancel');
}
function refreshRow(order: PageOrder): void {
  const row = order.row;
  cell(row, '.qty').textContent = String(order.quantity);
  const status = cell(row, '.status');
  status.textContent = order.status + (order.cancelReason ? ` (${order.cancelReason})` : '');
  status.className = `status ${order.status}`;
  row.dataset.status = order.status;
  cell<HTMLButtonElement>(row, '.pay').disabled = order.status !== 'AWAITING_PAYMENT' || Boolean(order.busy);
  cell<HTMLButtonElement>(row, '.cancel').disabled = !OPEN.has(order.status) || Boolean(order.busy);
  cell(row, '.deadline').textContent = countdown(order);
}
function countdown(order: PageOrder): string {
  if (order.status !== 'AWAITING_PAYMENT' || !order.paymentDeadline) return '—';
  const left = Math.max(0, Math.round((Date.parse(order.paymentDeadline) - Date.now()) / 1000));
  return `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
}
async function act(order: PageOrder, action: 'pay' | 'cancel'): Promise<void> {
  order.busy = true;
  refreshRow(order);
  const reply =
    action === 'pay'
      ? await api('POST', '/api/dev/simulate-payment', { body: { orderNo: order.orderNo }, token: order.token })
      : await api('POST', `/api/orders/${order.orderNo}/cancel`, { token: order.token });
  log(`${action} ${order.orderNo} → ${reply.status} ${reply.json.outcome ?? reply.code ?? ''}`);
  order.busy = false;
  await pollOrder(order);
}
async function pollOrder(order: PageOrder): Promise<void> {
  const { status, json } = await api<OrderAnswer>('GET', `/api/orders/${order.orderNo}`, { token: order.token });
  if (status === 200) upsertOrder(json);
}
// Long-polls: the browser opens at most 6 connections to the API, so only a few orders are
// watched this way (the rest are polled by the sweep below), leaving room for the page's calls.
const MAX_WATCHED = 3;
let watched = 0;
/** Waits for the order's status to change (GET ?waitForChange=), again and again until final. */
async function watchOrder(order: PageOrder): Promise<void> {
  order.watched = true;
  watched++;
  try {
    while (OPEN.has(order.status)) {
      const path = `/api/orders/${order.orderNo}?waitForChange=${order.status}&timeoutSeconds=20`;
      const { status, json } = await api<OrderAnswer>('GET', path, { token: order.token });
      if (status !== 200) break; // e.g. 503 (too many waits): the sweep polls it instead
      upsertOrder(json);
    }
  } finally {
    order.watched = false;
    watched--;
  }
}
// Each open order is watched (long-poll) or, beyond MAX_WATCHED, polled until its status is final.
async function pollOrders(): Promise<void> {
  const open = [...state.orders.values()].filter((o) => OPEN.has(o.status) && !o.watched);
  const polled: PageOrder[] = [];
  for (const order of open) {
    if (watched < MAX_WATCHED) void watchOrder(order).catch((err: unknown) => log(messageOf(err)));
    else polled.push(order);
  }
  await Promise.all(polled.map(pollOrder));
  const byStatus: Record<string, number> = {};
  for (const o of state.orders.values()) byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
  $('orders-summary').textContent = Object.entries(byStatus)
    .map(([s, n]) => `${s} ${n}`)
    .join(' · ');
}

// ---- rates and loops ---------------------------------------------------------------------------
function tickRates(): void {
  const now = performance.now();
  state.history.push({ t: now, ...state.counters });
  while (state.history.length > 2 && now - (state.history[1]?.t ?? now) >= 1000) state.history.shift();
  const first = state.history[0] ?? { t: now, ...state.counters };
  const seconds = Math.max((now - first.t) / 1000, 0.5);
  $('rate-accepted').textContent = ((state.counters.accepted - first.accepted) / seconds).toFixed(1);
  $('rate-sold-out').textContent = ((state.counters.soldOut - first.soldOut) / seconds).toFixed(1);
  $('total-accepted').textContent = String(state.counters.accepted);
  $('total-sold-out').textContent = String(state.counters.soldOut);
  for (const order of state.orders.values()) cell(order.row, '.deadline').textContent = countdown(order);
}
/** Runs `step` every `ms`, never two at once. */
function every(ms: number, step: () => unknown): void {
  const loop = async () => {
    try {
      await step();
    } catch (err) {
      log(messageOf(err));
    }
    setTimeout(() => void loop(), ms);
  };
  void loop();
}

async function init(): Promise<void> {
  renderStatusRows();
  input('buyer').value = `shopper-${randomId(2)}`;
  const dev = await api<DevConfig>('GET', '/api/dev/config');
  if (dev.status === 200) {
    state.dev = dev.json;
    if (dev.json.devAdminToken && !input('admin-token').value) input('admin-token').value = dev.json.devAdminToken;
    $('env-info').innerHTML = dev.json.temporalUiUrl
      ? `Temporal Web UI: <a target="_blank" rel="noopener"></a>`
      : 'no Temporal Web UI configured';
    const a = $('env-info').querySelector('a');
    if (a && dev.json.temporalUiUrl) {
      a.href = dev.json.temporalUiUrl;
      a.textContent = dev.json.temporalUiUrl;
    }
  } else {
    $('env-info').textContent = 'dev login is off (AUTH_DEV_LOGIN=false): shoppers, burst and Pay are unavailable';
    for (const id of ['buy', 'burst']) button(id).disabled = true;
  }
  input('new-sku').value = `SALE-${randomId(3).toUpperCase()}`;
  prepareIntent();
  await loadSales();
  // /?sku=X opens that sale.
  await open(new URLSearchParams(location.search).get('sku')?.trim() ?? '');
  every(1000, sample);
  every(1000, pollOrders);
  every(2000, sampleWorkers);
  every(2000, sampleDeliveries);
  every(500, tickRates);
  document.body.dataset.ready = 'true';
}
void init();
