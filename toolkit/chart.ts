/**
 * The support tools' pictures: hand-written SVG with no script, web font or outside file, so that each reads the same
 * in a README, a browser or an image viewer. Elements carry data-* attributes so that tests can read the picture.
 *  - burstChart, bench/results/latest.svg: one row per variant (and layout) with its requests per second and the
 *    checkout's latency as shaded bands up to p50, p90, p99 and the slowest answer, for every answer and for the wins
 *    alone; below, the drain: won orders in MySQL over time, seconds after the last win, every variant on one axis.
 *  - soakChart, soak/results/latest.svg: three panels over the run's minutes (each node process's post-GC heap, every
 *    process's RSS, the node processes' event-loop delay p99 against its bound), the warm-up's end dashed, the drain
 *    shaded.
 * Each picture states here the part of its report it reads, so that this module imports neither report.
 */

const WIDTH = 960;

const escape = (text: string) =>
  text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
const px = (n: number) => n.toFixed(1);
const text = (x: number, y: number, body: string, attrs = '') =>
  `<text x="${px(x)}" y="${px(y)}"${attrs ? ` ${attrs}` : ''}>${escape(body)}</text>`;

/** A round step of 1, 2 or 5 times a power of ten giving at most `intervals` intervals up to `span`. */
function niceStep(span: number, intervals = 4): number {
  if (!(span > 0)) return 1;
  const raw = span / intervals;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw) ?? 10 * power;
}

// ---- the benchmark's burst -------------------------------------------------------------------------------------

/** One variant's figures in one layout, as bench/report.ts writes them (null: not measured). */
export interface BurstVariantFigures {
  rps: number;
  requests: number;
  won: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  winP50Ms: number | null;
  /** Absent from results files written before it was recorded. */
  winP90Ms?: number | null;
  winP99Ms: number | null;
  winMaxMs: number | null;
  /** Only for a variant that persists orders; `series` is absent from files written before it was recorded. */
  drain?: {
    orders: number;
    /** From the last win, and from the first win, until the last order landed. */
    seconds: number;
    totalSeconds: number;
    /** Orders in MySQL every `stepSeconds` from `fromSeconds` (≤ 0) relative to the last win (bench/drain.ts). */
    series?: { stepSeconds: number; fromSeconds: number; persisted: readonly number[] };
  };
}

/** One CPU layout's variants (bench/report.ts, LayoutSection). */
export interface BurstLayout {
  layout: string;
  variants: Readonly<Record<string, BurstVariantFigures>>;
}

/** The part of the benchmark's report (bench/report.ts, Report) that its picture draws. */
export interface BurstChartReport {
  date: string;
  config: { requests: number; users: number; connections: number; stock: number; perUserLimit: number; quick: boolean };
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string };
  layouts: Readonly<Partial<Record<string, BurstLayout>>>;
}

interface BurstRow {
  /** "ours", or "ours (split)" when the report holds several layouts. */
  label: string;
  variant: string;
  layout: string;
  v: BurstVariantFigures;
  /** First row of a layout after another layout's rows: a gap and a rule above it. */
  groupStart: boolean;
}

const ROW = 40;
const BURST_COLOUR: Record<string, string> = {
  ours: '#2563eb',
  'ours-wait': '#60a5fa',
  'ours-events': '#1e40af',
  ceiling: '#9ca3af',
  sync: '#dc2626',
  queue: '#d97706',
};
/** Opacity of each latency band, by the percentile that closes it: the rarer the answer, the paler. */
const BANDS = [
  { name: 'p50', opacity: 1 },
  { name: 'p90', opacity: 0.6 },
  { name: 'p99', opacity: 0.35 },
  { name: 'max', opacity: 0.15 },
] as const;

const colourOf = (variant: string) => BURST_COLOUR[variant] ?? '#6b7280';
const whole = (n: number) => Math.round(n).toLocaleString('en-US');
/** A latency as the table shows it: whole milliseconds from 10 ms up, one decimal below. */
const ms = (n: number | null | undefined) => (n === null || n === undefined ? '—' : n >= 10 ? whole(n) : n.toFixed(1));

export function burstChart(report: BurstChartReport): string {
  const sections = Object.values(report.layouts).flatMap((section) => (section ? [section] : []));
  const several = sections.length > 1;
  const rows: BurstRow[] = sections.flatMap((section, s) =>
    Object.entries(section.variants).map(([variant, v], i) => ({
      label: several ? `${variant} (${section.layout})` : variant,
      variant,
      layout: section.layout,
      v,
      groupStart: s > 0 && i === 0,
    })),
  );
  // The names' column is as wide as the longest name (about 7.2 px a character at 13 px).
  const nameRight = Math.max(80, 16 + 7.2 * Math.max(...rows.map((row) => row.label.length), 4));
  const top = 92;
  const yOf: number[] = [];
  let y = top;
  for (const row of rows) {
    if (row.groupStart) y += 10;
    yOf.push(y);
    y += ROW;
  }
  const rowsEnd = y;

  const parts: string[] = [];
  const c = report.config;
  parts.push(
    text(
      16,
      26,
      `Flash-sale burst: ${whole(c.requests)} checkouts from ${whole(c.users)} shoppers over ${c.connections} connections, stock ${whole(c.stock)}, limit ${c.perUserLimit}${c.quick ? ' (quick)' : ''}`,
      'font-size="15" font-weight="bold"',
    ),
  );
  parts.push(...throughputColumn(rows, yOf, nameRight, rowsEnd));
  parts.push(...latencyColumn(rows, yOf, nameRight + 280, rowsEnd));
  for (const [i, row] of rows.entries()) {
    const rowY = yOf[i]!;
    if (row.groupStart)
      parts.push(`<line x1="16" x2="${WIDTH - 16}" y1="${px(rowY - 6)}" y2="${px(rowY - 6)}" stroke="#e5e7eb"/>`);
    parts.push(text(nameRight, rowY + ROW / 2 + 1, row.label, 'text-anchor="end"'));
  }
  const drain = drainPanel(rows, rowsEnd + 44);
  parts.push(...drain.parts);
  const m = report.machine;
  const caption = `${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}; ${report.date.slice(0, 16).replace('T', ' ')} UTC. Redraw from latest.json: npm run bench -- --report-only`;
  parts.push(text(16, drain.bottom + 22, caption, 'fill="#6b7280" font-size="11"'));
  const height = Math.ceil(drain.bottom + 34);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

/** Requests per second, one bar per row, on a linear scale from 0. */
function throughputColumn(rows: BurstRow[], yOf: number[], nameRight: number, rowsEnd: number): string[] {
  const x0 = nameRight + 10;
  const track = 200;
  const max = Math.max(...rows.map((row) => row.v.rps), 1);
  const parts = [text(x0, 62, 'requests / s (higher is better)', 'font-weight="bold"')];
  for (const [i, row] of rows.entries()) {
    const rowY = yOf[i]!;
    const w = Math.max(1, (row.v.rps / max) * track);
    parts.push(
      `<g class="rps" data-variant="${escape(row.variant)}" data-layout="${escape(row.layout)}" data-rps="${row.v.rps}">` +
        `<rect x="${px(x0)}" y="${px(rowY + 7)}" width="${px(w)}" height="${ROW - 14}" fill="${colourOf(row.variant)}"/>` +
        text(x0 + w + 6, rowY + ROW / 2 + 5, whole(row.v.rps)) +
        '</g>',
    );
  }
  parts.push(`<line x1="${px(x0)}" x2="${px(x0)}" y1="${px(yOf[0]! - 2)}" y2="${px(rowsEnd)}" stroke="#9ca3af"/>`);
  return parts;
}

/**
 * The checkout's latency per row on a log scale (a ceiling's p50 of 30 ms and a slowest answer of
 * seconds share the axis): the upper band is every answer, the lower the wins alone, drawn only
 * where they differ (a variant that turned some shoppers away).
 */
function latencyColumn(rows: BurstRow[], yOf: number[], x0: number, rowsEnd: number): string[] {
  const track = 250;
  const labelX = x0 + track + 10;
  const kinds = (v: BurstVariantFigures) => {
    const all = { kind: 'all', values: [v.p50Ms, v.p90Ms, v.p99Ms, v.maxMs] };
    const win = { kind: 'win', values: [v.winP50Ms, v.winP90Ms ?? null, v.winP99Ms, v.winMaxMs] };
    return v.won > 0 && v.won < v.requests && v.winP50Ms !== null ? [all, win] : [all];
  };
  const known = rows.flatMap((row) =>
    kinds(row.v).flatMap((k) => k.values.filter((n): n is number => n !== null && n > 0)),
  );
  // From a 1-3-10 step at or below the fastest figure to one at or above the slowest.
  const steps = (from: number, to: number) => {
    const out: number[] = [];
    for (let decade = 10 ** Math.floor(Math.log10(from)); decade <= to * 10; decade *= 10) out.push(decade, 3 * decade);
    return out;
  };
  const fastest = Math.max(0.1, Math.min(...known, 1_000));
  const slowest = Math.max(...known, fastest * 10);
  const candidates = steps(fastest, slowest);
  const lo = candidates.filter((t) => t <= fastest).at(-1) ?? fastest;
  const hi = candidates.find((t) => t >= slowest) ?? slowest;
  const xOf = (n: number) => x0 + (Math.log10(Math.min(hi, Math.max(lo, n)) / lo) / Math.log10(hi / lo)) * track;

  const parts = [
    text(x0, 62, 'latency, ms (log scale)', 'font-weight="bold"'),
    text(labelX, 62, 'p50 · p90 · p99 · max', 'font-weight="bold" font-size="12"'),
  ];
  // The legend of the bands: each swatch the shade of the band that ends at its percentile.
  let legendX = x0;
  for (const band of BANDS) {
    parts.push(
      `<rect x="${px(legendX)}" y="70" width="14" height="10" fill="#374151" fill-opacity="${band.opacity}"/>`,
    );
    parts.push(text(legendX + 18, 79, `to ${band.name}`, 'font-size="11" fill="#374151"'));
    legendX += 62;
  }
  parts.push(text(labelX, 79, 'upper band: every answer; lower: the wins', 'font-size="11" fill="#6b7280"'));
  for (const tick of steps(lo, hi).filter((t) => t >= lo && t <= hi)) {
    const x = xOf(tick);
    parts.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${px(yOf[0]! - 2)}" y2="${px(rowsEnd)}" stroke="#e5e7eb"/>`);
    parts.push(
      text(
        x,
        rowsEnd + 14,
        tick >= 1_000 ? `${tick / 1_000} s` : String(tick),
        'text-anchor="middle" font-size="11" fill="#6b7280"',
      ),
    );
  }
  for (const [i, row] of rows.entries()) {
    const rowY = yOf[i]!;
    const bands = kinds(row.v);
    for (const [j, { kind, values }] of bands.entries()) {
      const barY = bands.length === 1 ? rowY + 9 : rowY + 4 + j * 17;
      const barH = bands.length === 1 ? ROW - 18 : 14;
      let from = lo;
      const rects: string[] = [];
      for (const [k, value] of values.entries()) {
        // An unknown percentile (a file from before it was recorded) merges into the next band.
        if (value === null) continue;
        const x = xOf(from);
        rects.push(
          `<rect x="${px(x)}" y="${px(barY)}" width="${px(Math.max(0.5, xOf(value) - x))}" height="${barH}" fill="${colourOf(row.variant)}" fill-opacity="${BANDS[k]!.opacity}"/>`,
        );
        from = value;
      }
      parts.push(
        `<g class="latency" data-variant="${escape(row.variant)}" data-layout="${escape(row.layout)}" data-kind="${kind}" data-ms="${values.map((n) => n ?? '').join(' ')}">` +
          rects.join('') +
          text(labelX, barY + barH / 2 + 4, `${kind} ${values.map(ms).join(' · ')}`, 'font-size="12"') +
          '</g>',
      );
    }
  }
  return parts;
}

/** Won orders in MySQL over time, seconds after the last win, every variant that persists them on one axis. */
function drainPanel(rows: BurstRow[], top: number): { parts: string[]; bottom: number } {
  const drained = rows.flatMap((row) => (row.v.drain ? [{ ...row, drain: row.v.drain }] : []));
  const parts = [
    text(16, top, 'Drain: won orders in MySQL (AWAITING_PAYMENT), seconds after the last win', 'font-weight="bold"'),
  ];
  if (drained.length === 0) {
    parts.push(
      text(16, top + 22, 'No variant in this run persists orders (ceiling only): nothing to drain.', 'fill="#6b7280"'),
    );
    return { parts, bottom: top + 30 };
  }
  const lines = drained.map((row) => {
    const series = row.drain.series;
    const points = series
      ? series.persisted.map((count, k) => ({ t: series.fromSeconds + k * series.stepSeconds, count }))
      : [];
    return { ...row, points };
  });
  const missing = lines.some((line) => line.points.length === 0);
  const plotTop = top + (missing ? 30 : 16);
  const plotH = 200;
  const plotBottom = plotTop + plotH;
  const x0 = 64;
  const x1 = WIDTH - 280;
  // Each line starts at its first win; one without a series is known only from the first win to its end.
  const tMin = Math.min(
    0,
    ...lines.map((line) => line.points[0]?.t ?? -(line.drain.totalSeconds - line.drain.seconds)),
  );
  const tMaxRaw = Math.max(0.1, ...lines.map((line) => Math.max(line.points.at(-1)?.t ?? 0, line.drain.seconds)));
  const tStep = niceStep(tMaxRaw - tMin, 10);
  const from = Math.floor(tMin / tStep) * tStep;
  const to = Math.ceil(tMaxRaw / tStep) * tStep;
  const most = Math.max(1, ...lines.map((line) => Math.max(line.drain.orders, ...line.points.map((p) => p.count))));
  const cStep = niceStep(most, 5);
  const cTop = Math.ceil(most / cStep) * cStep;
  const xOf = (t: number) => x0 + ((t - from) / (to - from)) * (x1 - x0);
  const yOf = (count: number) => plotBottom - (count / cTop) * plotH;

  if (missing) {
    parts.push(
      text(
        16,
        top + 18,
        'This results file predates the drain series: a dot marks when the last won order reached MySQL; the next run draws the lines.',
        'font-size="11" fill="#6b7280"',
      ),
    );
  }
  for (let count = 0; count <= cTop + 1e-9; count += cStep) {
    parts.push(`<line x1="${x0}" x2="${x1}" y1="${px(yOf(count))}" y2="${px(yOf(count))}" stroke="#e5e7eb"/>`);
    parts.push(text(x0 - 6, yOf(count) + 4, whole(count), 'text-anchor="end" font-size="11" fill="#6b7280"'));
  }
  for (let k = 0; from + k * tStep <= to + 1e-9; k++) {
    const t = from + k * tStep;
    const label = `${t > 0 ? '+' : ''}${Number(t.toFixed(3))} s`;
    parts.push(text(xOf(t), plotBottom + 15, label, 'text-anchor="middle" font-size="11" fill="#6b7280"'));
  }
  parts.push(`<line x1="${x0}" x2="${x1}" y1="${plotBottom}" y2="${plotBottom}" stroke="#9ca3af"/>`);
  parts.push(
    `<line x1="${px(xOf(0))}" x2="${px(xOf(0))}" y1="${plotTop}" y2="${plotBottom}" stroke="#374151" stroke-dasharray="3 3"/>`,
  );
  parts.push(text(xOf(0) + 4, plotTop + 11, 'last win', 'font-size="11" fill="#374151"'));
  parts.push(
    text(
      x0,
      plotBottom + 32,
      'seconds after the last win (before 0: the burst, from each run’s first win)',
      'font-size="11" fill="#6b7280"',
    ),
  );

  const layouts = [...new Set(lines.map((line) => line.layout))];
  // The first layout drawn solid, the others dashed (a line) or hollow (a dot).
  const dash = (layout: string) => (layouts.indexOf(layout) > 0 ? ' stroke-dasharray="7 4"' : '');
  const dot = (layout: string, colour: string) =>
    layouts.indexOf(layout) > 0 ? `fill="#fff" stroke="${colour}" stroke-width="2"` : `fill="${colour}"`;
  let legendY = plotTop + 4;
  for (const line of lines) {
    const colour = colourOf(line.variant);
    const attrs = `data-variant="${escape(line.variant)}" data-layout="${escape(line.layout)}" data-orders="${line.drain.orders}" data-seconds="${line.drain.seconds}"`;
    if (line.points.length > 0) {
      const points = line.points.map((p) => `${px(xOf(p.t))},${px(yOf(p.count))}`).join(' ');
      parts.push(
        `<polyline class="drain" ${attrs} data-points="${line.points.length}" points="${points}" fill="none" stroke="${colour}" stroke-width="2" stroke-linejoin="round"${dash(line.layout)}/>`,
      );
    } else {
      // The end alone is known: a dot, dropped to the time axis so that it reads as a finishing time.
      const [cx, cy] = [px(xOf(line.drain.seconds)), px(yOf(line.drain.orders))];
      parts.push(
        `<g class="drain-end" ${attrs}><line x1="${cx}" x2="${cx}" y1="${cy}" y2="${plotBottom}" stroke="${colour}" stroke-dasharray="2 3"/>` +
          `<circle cx="${cx}" cy="${cy}" r="4.5" ${dot(line.layout, colour)}/></g>`,
      );
    }
    // The legend: name, then when the last order landed and how many were in by the last win.
    const atLastWin = line.points.find((p) => Math.abs(p.t) < 1e-9)?.count;
    parts.push(
      line.points.length > 0
        ? `<line x1="${x1 + 20}" x2="${x1 + 44}" y1="${legendY}" y2="${legendY}" stroke="${colour}" stroke-width="2"${dash(line.layout)}/>`
        : `<circle cx="${x1 + 32}" cy="${legendY}" r="4.5" ${dot(line.layout, colour)}/>`,
    );
    parts.push(text(x1 + 50, legendY + 4, line.label, 'font-size="12"'));
    parts.push(
      text(
        x1 + 50,
        legendY + 19,
        `all ${whole(line.drain.orders)} in at +${line.drain.seconds.toFixed(1)} s` +
          (atLastWin === undefined ? '' : `; ${whole(atLastWin)} by the last win`),
        'font-size="11" fill="#6b7280"',
      ),
    );
    legendY += 38;
  }
  return { parts, bottom: Math.max(plotBottom + 36, legendY - 10) };
}

// ---- the soak ------------------------------------------------------------------------------------------------

/** The servers whose RSS the soak draws, in the legend's order (soak/analysis.ts, SERVERS). */
const SOAK_SERVERS = ['temporal', 'mysql', 'redis', 'stripe-mock', 'stripe-double'] as const;

/** A node process's figures in one sample (soak/analysis.ts, NodeFigures); null: the probe had no answer. */
interface SoakNodeFigures {
  heapUsedMb: number;
  rssMb: number;
  loopDelayMs: { p99: number };
}

/** The part of the soak's report (soak/report.ts, SoakReport) that its picture draws. */
export interface SoakChartReport {
  date: string;
  settings: {
    minutes: number;
    rate: number;
    plantedLeak: boolean;
    limits: { heapSlopeMbPerHour: number; loopDelayP99Ms: number };
  };
  warmup: { minute: number; reason: string };
  samples: ReadonlyArray<{
    minute: number;
    phase: string;
    api: SoakNodeFigures | null;
    worker: SoakNodeFigures | null;
    servers: Readonly<Record<(typeof SOAK_SERVERS)[number], { rssMb: number | null }>>;
  }>;
  verdict: { holds: boolean; heapSlopeMbPerHour: Readonly<Record<'api' | 'worker', number | null>> };
}

interface SoakSeries {
  name: string;
  points: Array<[number, number]>;
}

const SOAK_PANEL_HEIGHT = 200;
const SOAK_LEFT = 70;
const SOAK_RIGHT = 160;
const SOAK_COLOUR: Record<string, string> = {
  api: '#2563eb',
  worker: '#dc2626',
  temporal: '#059669',
  mysql: '#d97706',
  redis: '#7c3aed',
  'stripe-mock': '#9ca3af',
  'stripe-double': '#6b7280',
};

function soakPanel(options: {
  id: string;
  title: string;
  top: number;
  xMax: number;
  series: SoakSeries[];
  unit: string;
  limit?: number;
  /** The y axis spans the values only (a slope of a few MB on a heap of tens shows); else it starts at zero. */
  fitValues?: boolean;
  warmupMinute: number;
  loadMinutes: number;
}): string {
  const { id, title, top, xMax, series, unit, limit, warmupMinute, loadMinutes } = options;
  const plotTop = top + 24;
  const plotHeight = SOAK_PANEL_HEIGHT - 50;
  const plotRight = WIDTH - SOAK_RIGHT;
  const yValues = series.flatMap((s) => s.points.map(([, y]) => y));
  const high = Math.max(limit ?? 0, ...yValues, 1);
  const low = options.fitValues && yValues.length > 0 ? Math.min(...yValues) : 0;
  const step = niceStep(options.fitValues ? Math.max(high - low, 1) * 1.2 : high * 1.1);
  const yMin = Math.max(0, Math.floor(low / step) * step - (options.fitValues ? step : 0));
  const yMax = Math.ceil((options.fitValues ? high + step / 2 : high * 1.1) / step) * step;
  const xOf = (x: number) => SOAK_LEFT + (x / Math.max(xMax, 1)) * (plotRight - SOAK_LEFT);
  const yOf = (y: number) => plotTop + plotHeight - ((y - yMin) / (yMax - yMin)) * plotHeight;
  const parts: string[] = [text(SOAK_LEFT, top + 14, title, 'font-weight="600"')];
  // The drain (after the load) shaded, the warm-up's end dashed.
  if (xMax > loadMinutes)
    parts.push(
      `<rect x="${px(xOf(loadMinutes))}" y="${px(plotTop)}" width="${px(xOf(xMax) - xOf(loadMinutes))}" height="${px(plotHeight)}" fill="#f3f4f6"/>`,
    );
  for (let y = yMin; y <= yMax + 1e-9; y += step) {
    parts.push(
      `<line x1="${SOAK_LEFT}" x2="${plotRight}" y1="${px(yOf(y))}" y2="${px(yOf(y))}" stroke="#e5e7eb"/>`,
      text(SOAK_LEFT - 6, yOf(y) + 4, `${Number(y.toPrecision(6))}`, 'text-anchor="end" fill="#6b7280"'),
    );
  }
  const xStep = niceStep(xMax, 8);
  for (let x = 0; x <= xMax + 1e-9; x += xStep)
    parts.push(
      text(xOf(x), plotTop + plotHeight + 16, `${Number(x.toPrecision(6))}`, 'text-anchor="middle" fill="#6b7280"'),
    );
  parts.push(
    text(plotRight, plotTop + plotHeight + 32, 'minutes into the load', 'text-anchor="end" fill="#6b7280"'),
    text(SOAK_LEFT - 6, plotTop - 8, unit, 'text-anchor="end" fill="#6b7280"'),
    `<line x1="${px(xOf(warmupMinute))}" x2="${px(xOf(warmupMinute))}" y1="${px(plotTop)}" y2="${px(plotTop + plotHeight)}" stroke="#374151" stroke-dasharray="4 3" data-warmup-end="${warmupMinute}"/>`,
  );
  if (limit !== undefined)
    parts.push(
      `<line x1="${SOAK_LEFT}" x2="${plotRight}" y1="${px(yOf(limit))}" y2="${px(yOf(limit))}" stroke="#ef4444" stroke-dasharray="2 2" data-limit="${limit}"/>`,
      text(plotRight - 4, yOf(limit) - 4, `bound ${limit} ${unit}`, 'text-anchor="end" fill="#ef4444"'),
    );
  series.forEach((s, i) => {
    const colour = SOAK_COLOUR[s.name] ?? '#111827';
    if (s.points.length > 0)
      parts.push(
        `<polyline data-panel="${id}" data-series="${escape(s.name)}" data-points="${s.points.length}" fill="none" stroke="${colour}" stroke-width="2" points="${s.points
          .map(([x, y]) => `${px(xOf(x))},${px(yOf(y))}`)
          .join(' ')}"/>`,
      );
    const ly = plotTop + 12 + i * 18;
    parts.push(
      `<line x1="${plotRight + 16}" x2="${plotRight + 36}" y1="${ly - 4}" y2="${ly - 4}" stroke="${colour}" stroke-width="3"/>`,
      text(plotRight + 42, ly, s.name),
    );
  });
  return parts.join('\n');
}

export function soakChart(report: SoakChartReport): string {
  const samples = report.samples;
  const xMax = Math.max(report.settings.minutes, ...samples.map((s) => s.minute));
  const warmupMinute = report.warmup.minute;
  const nodeSeries = (pick: (s: (typeof samples)[number], name: 'api' | 'worker') => number | null | undefined) =>
    (['api', 'worker'] as const).map((name) => ({
      name,
      points: samples.flatMap((s): Array<[number, number]> => {
        const value = pick(s, name);
        return value === null || value === undefined ? [] : [[s.minute, value]];
      }),
    }));
  const serverSeries = SOAK_SERVERS.map((name) => ({
    name,
    points: samples.flatMap((s): Array<[number, number]> => {
      const rss = s.servers[name].rssMb;
      return rss === null ? [] : [[s.minute, rss]];
    }),
  }));
  const v = report.verdict;
  const slope = (name: 'api' | 'worker') => {
    const value = v.heapSlopeMbPerHour[name];
    return value === null ? '—' : `${value.toFixed(1)} MB/h`;
  };
  const header = [
    text(
      16,
      24,
      `Soak ${report.date.slice(0, 16).replace('T', ' ')}: ${report.settings.minutes} min at ${report.settings.rate} checkouts/s${report.settings.plantedLeak ? ', planted leak' : ''} — ${v.holds ? 'HOLDS' : 'DOES NOT HOLD'}`,
      `font-size="15" font-weight="700" fill="${v.holds ? '#047857' : '#b91c1c'}"`,
    ),
    text(
      16,
      44,
      `heap slope after the warm-up (ends minute ${warmupMinute}, ${report.warmup.reason}): API ${slope('api')}, worker ${slope('worker')} (bound ${report.settings.limits.heapSlopeMbPerHour} MB/h)`,
      'fill="#374151"',
    ),
  ];
  const top = 60;
  const panels = [
    soakPanel({
      id: 'heap',
      title: "Heap used after a forced GC (the lowest of each minute's readings)",
      top,
      xMax,
      series: nodeSeries((s, name) => s[name]?.heapUsedMb),
      unit: 'MB',
      fitValues: true,
      warmupMinute,
      loadMinutes: report.settings.minutes,
    }),
    soakPanel({
      id: 'rss',
      title: 'Resident memory (RSS)',
      top: top + SOAK_PANEL_HEIGHT,
      xMax,
      series: [...nodeSeries((s, name) => s[name]?.rssMb), ...serverSeries],
      unit: 'MB',
      warmupMinute,
      loadMinutes: report.settings.minutes,
    }),
    soakPanel({
      id: 'loop',
      title: 'Event-loop delay p99 over each minute',
      top: top + 2 * SOAK_PANEL_HEIGHT,
      xMax,
      // The start's window is the processes' start-up, not the app under load.
      series: nodeSeries((s, name) => (s.phase === 'start' ? null : s[name]?.loopDelayMs.p99)),
      unit: 'ms',
      limit: report.settings.limits.loopDelayP99Ms,
      warmupMinute,
      loadMinutes: report.settings.minutes,
    }),
  ];
  const height = top + 3 * SOAK_PANEL_HEIGHT + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12" data-holds="${v.holds}">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    ...header,
    ...panels,
    '</svg>',
    '',
  ].join('\n');
}
