/**
 * The `wait` preference of RFC 7240 (`Prefer: wait=5`), as the checkout honours it.
 *
 * Preferences are advisory (RFC 7240 §2): one the server does not understand, or a malformed one,
 * is ignored, never refused; the client must handle the 202 answer anyway. So: tokens are
 * case-insensitive; several preferences in one header or in several Prefer headers (Node joins
 * them with ", "); the first `wait` wins (§2); values may be quoted; parameters after ";" are
 * ignored; a value that is not delta-seconds (digits) is ignored; `wait=0` means "do not wait".
 */

/** At most this many digits are read: anything longer is above any sensible cap anyway. */
const MAX_WAIT_DIGITS = 9;

/**
 * The wait in whole seconds the client prefers, capped at `maxSeconds`; 0 when there is no usable
 * `wait` preference (absent, malformed, zero) or waiting is disabled (`maxSeconds` 0).
 */
export function preferredWaitSeconds(header: string | undefined, maxSeconds: number): number {
  if (!header || maxSeconds <= 0) return 0;
  for (const preference of header.split(',')) {
    // `token [= value] *(; parameter)`: only the first part matters here.
    const [nameAndValue = ''] = preference.split(';');
    const equals = nameAndValue.indexOf('=');
    const name = (equals === -1 ? nameAndValue : nameAndValue.slice(0, equals)).trim().toLowerCase();
    if (name !== 'wait') continue;
    // The first occurrence decides, even when it is malformed (RFC 7240 §2).
    let value = equals === -1 ? '' : nameAndValue.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (!/^\d+$/.test(value)) return 0;
    const seconds = value.length > MAX_WAIT_DIGITS ? Number.MAX_SAFE_INTEGER : Number(value);
    return Math.min(seconds, Math.floor(maxSeconds));
  }
  return 0;
}
