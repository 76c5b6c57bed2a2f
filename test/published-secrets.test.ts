/**
 * Every secret this repository publishes is one production refuses (src/config/secrets.ts): a default, example or
 * test secret written without `npm run published-secrets` fails here, naming the file.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PUBLISHED_SECRET_FINGERPRINTS } from '../src/config/published-secrets.js';
import { publishedSecretFingerprints } from '../toolkit/published-secrets.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('published secrets', () => {
  it("has the fingerprint of every secret in the repository's files", () => {
    const files = execFileSync(
      'git',
      ['ls-files', '-z', '--', '.', ':!*.lock*', ':!bench/results', ':!chaos/results'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    )
      .split('\0')
      .filter(Boolean);
    const missing: string[] = [];
    let found = 0;
    for (const file of files) {
      let text: string;
      try {
        text = readFileSync(join(root, file), 'utf8');
      } catch {
        continue; // deleted in the work tree, or not a file
      }
      for (const fingerprint of publishedSecretFingerprints(text)) {
        found++;
        if (!PUBLISHED_SECRET_FINGERPRINTS.has(fingerprint)) missing.push(file);
      }
    }
    expect(found).toBeGreaterThan(20);
    expect(missing, 'run `npm run published-secrets`: these files publish a secret production would accept').toEqual(
      [],
    );
  });
});
