/**
 * The soak's picture, soak/results/latest.svg: hand-written SVG (no script, font or outside file, as
 * bench/chart.ts), three panels over the run's minutes: each node process's post-GC heap, every process's RSS, and
 * the node processes' event-loop delay p99 against its bound. The warm-up's end is a dashed line, the drain (load
 * stopped) shaded. Each series is a <polyline> with data-series and data-panel, for tests to read.
 */
import type { SoakReport } from './report.js';

const WIDTH = 960;
const PANEL_HEIGHT = 200;
const LEFT = 70;
const RIGHT = 160;
const COLOUR: Record<string, string> = {
  api: '#2563eb',
  worker: '#dc2626',
  temporal: '#059669',
  mysql: '#d97706',
  redis: '#7c3aed',
  'stripe-mock': '#9ca3af',
  'stripe-double': '#6b7280',
};

interface Series {
  name: string;
  points: Array<[number, number]>;
}

const px = (n: number) => n.toFixed(1);
const escape = (text: string) =>
  text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
const text = (x: number, y: number, body: string, attrs = '') =>
  `<text x="${px(x)}" y="${px(y)}"${attrs ? ` ${attrs}` : ''}>${escape(body)}</text>`;

/** A round step for about `ticks` gridlines up to `max`: 1, 2 or 5 times a power of ten. */
export function niceStep(max: number, ticks = 4): number {
  if (!(max > 0)) return 1;
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return step ?? 10 * power;
}

function panel(options: {
  id: string;
  title: string;
  top: number;
  xMax: number;
  series: Series[];
  unit: string;
  limit?: number;
  /** The y axis spans the values only (a slope of a few MB on a heap of tens shows); else it starts at zero. */
  fitValues?: boolean;
  warmupMinute: number;
  loadMinutes: number;
}): string {
  const { id, title, top, xMax, series, unit, limit, warmupMinute, loadMinutes } = options;
  const plotTop = top + 24;
  const plotHeight = PANEL_HEIGHT - 50;
  const plotRight = WIDTH - RIGHT;
  const yValues = series.flatMap((s) => s.points.map(([, y]) => y));
  const high = Math.max(limit ?? 0, ...yValues, 1);
  const low = options.fitValues && yValues.length > 0 ? Math.min(...yValues) : 0;
  const step = niceStep(options.fitValues ? Math.max(high - low, 1) * 1.2 : high * 1.1);
  const yMin = Math.max(0, Math.floor(low / step) * step - (options.fitValues ? step : 0));
  const yMax = Math.ceil((options.fitValues ? high + step / 2 : high * 1.1) / step) * step;
  const xOf = (x: number) => LEFT + (x / Math.max(xMax, 1)) * (plotRight - LEFT);
  const yOf = (y: number) => plotTop + plotHeight - ((y - yMin) / (yMax - yMin)) * plotHeight;
  const parts: string[] = [text(LEFT, top + 14, title, 'font-weight="600"')];
  // The drain (after the load) shaded, the warm-up's end dashed.
  if (xMax > loadMinutes)
    parts.push(
      `<rect x="${px(xOf(loadMinutes))}" y="${px(plotTop)}" width="${px(xOf(xMax) - xOf(loadMinutes))}" height="${px(plotHeight)}" fill="#f3f4f6"/>`,
    );
  for (let y = yMin; y <= yMax + 1e-9; y += step) {
    parts.push(
      `<line x1="${LEFT}" x2="${plotRight}" y1="${px(yOf(y))}" y2="${px(yOf(y))}" stroke="#e5e7eb"/>`,
      text(LEFT - 6, yOf(y) + 4, `${Number(y.toPrecision(6))}`, 'text-anchor="end" fill="#6b7280"'),
    );
  }
  const xStep = niceStep(xMax, 8);
  for (let x = 0; x <= xMax + 1e-9; x += xStep)
    parts.push(
      text(xOf(x), plotTop + plotHeight + 16, `${Number(x.toPrecision(6))}`, 'text-anchor="middle" fill="#6b7280"'),
    );
  parts.push(
    text(plotRight, plotTop + plotHeight + 32, 'minutes into the load', 'text-anchor="end" fill="#6b7280"'),
    text(LEFT - 6, plotTop - 8, unit, 'text-anchor="end" fill="#6b7280"'),
    `<line x1="${px(xOf(warmupMinute))}" x2="${px(xOf(warmupMinute))}" y1="${px(plotTop)}" y2="${px(plotTop + plotHeight)}" stroke="#374151" stroke-dasharray="4 3" data-warmup-end="${warmupMinute}"/>`,
  );
  if (limit !== undefined)
    parts.push(
      `<line x1="${LEFT}" x2="${plotRight}" y1="${px(yOf(limit))}" y2="${px(yOf(limit))}" stroke="#ef4444" stroke-dasharray="2 2" data-limit="${limit}"/>`,
      text(plotRight - 4, yOf(limit) - 4, `bound ${limit} ${unit}`, 'text-anchor="end" fill="#ef4444"'),
    );
  series.forEach((s, i) => {
    const colour = COLOUR[s.name] ?? '#111827';
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

export function chart(report: SoakReport): string {
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
  const serverSeries = (['temporal', 'mysql', 'redis', 'stripe-mock', 'stripe-double'] as const).map((name) => ({
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
    panel({
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
    panel({
      id: 'rss',
      title: 'Resident memory (RSS)',
      top: top + PANEL_HEIGHT,
      xMax,
      series: [...nodeSeries((s, name) => s[name]?.rssMb), ...serverSeries],
      unit: 'MB',
      warmupMinute,
      loadMinutes: report.settings.minutes,
    }),
    panel({
      id: 'loop',
      title: 'Event-loop delay p99 over each minute',
      top: top + 2 * PANEL_HEIGHT,
      xMax,
      // The start's window is the processes' start-up, not the app under load.
      series: nodeSeries((s, name) => (s.phase === 'start' ? null : s[name]?.loopDelayMs.p99)),
      unit: 'ms',
      limit: report.settings.limits.loopDelayP99Ms,
      warmupMinute,
      loadMinutes: report.settings.minutes,
    }),
  ];
  const height = top + 3 * PANEL_HEIGHT + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12" data-holds="${v.holds}">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    ...header,
    ...panels,
    '</svg>',
    '',
  ].join('\n');
}
