/** Percentiles and rounding for the benchmark's figures. */
export const sorted = (values: number[]) => Float64Array.from(values).sort();

/** The p-th percentile of sorted values (nearest rank); null when there are none. */
export function pct(values: Float64Array, p: number): number | null {
  if (values.length === 0) return null;
  return values[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)] ?? null;
}
export function round(value: number, digits?: number): number;
export function round(value: number | null, digits?: number): number | null;
export function round(value: number | null, digits = 1): number | null {
  return value === null ? null : Math.round(value * 10 ** digits) / 10 ** digits;
}
export const fmt = (value: number | null | undefined, digits = 1) =>
  value === null || value === undefined ? '—' : value.toFixed(digits);
