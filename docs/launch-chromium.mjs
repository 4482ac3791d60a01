// Launches the system Chromium (Debian's `chromium`) through playwright-core for the README screenshots.
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

/** Where Debian's `chromium` package puts the browser; playwright's own downloads are never used. */
export const CHROMIUM = '/usr/bin/chromium';

/** Starts a headless Chromium with a fresh profile; `extraArgs` are appended to the flags. */
export async function launchChromium(extraArgs = []) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install it with \`apt-get install -y chromium\` (or run scripts/install-servers.sh as root)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      ...extraArgs,
    ],
  });
}
