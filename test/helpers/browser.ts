/** The real browser of the page tests: Debian's chromium, driven by playwright-core. */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium package; scripts/install-tools.sh --test-server installs it. */
const CHROMIUM = '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: run 'bash scripts/install-tools.sh --test-server' (npm test does; it installs Debian's chromium)`,
    );
  return chromium.launch({ executablePath: CHROMIUM, headless: true });
}
