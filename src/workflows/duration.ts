/**
 * Duration strings ("30m", "90s", "2 hours") to milliseconds, with `ms`, the parser Temporal's SDK
 * itself uses. Here because the workflow needs it (the payment deadline is computed from the
 * duration in its input) and the workflow bundle takes its code from this folder; config and auth
 * share it so every process reads a duration the same way.
 */
import ms from 'ms';

/** Milliseconds of a duration string or number; throws on anything that is not a positive duration. */
export function durationToMs(value: string | number): number {
  const parsed = typeof value === 'number' ? value : ms(value as Parameters<typeof ms>[0]);
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed <= 0) {
    throw new TypeError(`not a positive duration: ${JSON.stringify(value)}`);
  }
  return parsed;
}
