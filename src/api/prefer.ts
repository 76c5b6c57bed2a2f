/** RFC 7240's `wait` preference: advisory (§2), so a malformed one is ignored, never refused; the first `wait` wins. */

// Digits read at most: longer values are above any sensible cap anyway.
const MAX_WAIT_DIGITS = 9;

/** Preferred wait in whole seconds, capped at `maxSeconds`; 0 when absent, malformed, zero or disabled. */
export function preferredWaitSeconds(header: string | undefined, maxSeconds: number): number {
  if (!header || maxSeconds <= 0) return 0;
  for (const preference of header.split(',')) {
    // `token [= value] *(; parameter)`: parameters are ignored.
    const [nameAndValue = ''] = preference.split(';');
    const equals = nameAndValue.indexOf('=');
    const name = (equals === -1 ? nameAndValue : nameAndValue.slice(0, equals)).trim().toLowerCase();
    if (name !== 'wait') continue;
    let value = equals === -1 ? '' : nameAndValue.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (!/^\d+$/.test(value)) return 0;
    const seconds = value.length > MAX_WAIT_DIGITS ? Number.MAX_SAFE_INTEGER : Number(value);
    return Math.min(seconds, Math.floor(maxSeconds));
  }
  return 0;
}
