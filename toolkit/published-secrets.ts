/**
 * Secrets this repository publishes (compose defaults, development defaults, examples in docs and tests): found in
 * text, so `npm run published-secrets` can fingerprint every one in the history and test/published-secrets.test.ts
 * can tell when a new one is written without being added. Finding too much is harmless: a fingerprint nobody uses.
 */
import { secretFingerprint } from '../src/config/secrets.js';

// A variable named as a secret, then `:`, `=` or compose's `:-`, then its value, quoted or bare.
const ASSIGNED =
  /\b[A-Z][A-Z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|API_KEY)[A-Z0-9_]*\b['"]?\s*(?::-|:|=)\s*(?:'([^'\n]{4,200})'|"([^"\n]{4,200})"|`([^`$\n]{4,200})`|([^\s'"`,;(){}]{4,200}))/g;
// A payload codec key, `<id>=<32 bytes in base64>`.
const CODEC_KEY = /[A-Za-z0-9_-]{1,32}=([A-Za-z0-9+/]{43}=)/g;
// A payment provider's secret by its prefix (Stripe's signing secrets and API keys), however it is assigned.
const PROVIDER_SECRET = /\b(?:whsec|sk_test|sk_live|rk_test|rk_live)_[A-Za-z0-9_+/=]{2,200}/g;
// A password in a URL's user part.
const URL_PASSWORD = /[a-z][a-z0-9+.-]*:\/\/[^:/@\s'"`]+:([^@/\s'"`$]{4,200})@/g;

/** The fingerprint of every secret-looking value in `text`. */
export function publishedSecretFingerprints(text: string): Set<string> {
  const found = new Set<string>();
  for (const match of text.matchAll(ASSIGNED)) {
    const value = match[1] ?? match[2] ?? match[3] ?? match[4];
    if (value) found.add(secretFingerprint(value));
  }
  for (const match of text.matchAll(CODEC_KEY)) found.add(secretFingerprint(Buffer.from(match[1]!, 'base64')));
  for (const match of text.matchAll(PROVIDER_SECRET)) found.add(secretFingerprint(match[0]));
  for (const match of text.matchAll(URL_PASSWORD)) found.add(secretFingerprint(match[1]!));
  return found;
}
