// Makes docs/screenshots/demo.png: runs `npm start` on free ports, logs alice in with Chromium, shoots the headers page.
// Usage (from the repository root): node docs/screenshot-demo.mjs
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { launchChromium } from './launch-chromium.mjs';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'docs', 'screenshots', 'demo.png');

/** A port nothing listens on right now (the OS picks it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const ports = { gateway: await freePort(), https: await freePort(), metrics: await freePort(), idp: await freePort(), upstream: await freePort() };
// Own process group, so the whole demo (npm and node under it) stops with one signal.
const demo = spawn('npm', ['start', '--silent'], {
  cwd: ROOT,
  detached: true,
  stdio: ['ignore', 'pipe', 'pipe'],
  env: {
    ...process.env,
    DEMO_GATEWAY_PORT: String(ports.gateway),
    DEMO_HTTPS_PORT: String(ports.https),
    DEMO_METRICS_PORT: String(ports.metrics),
    DEMO_IDP_PORT: String(ports.idp),
    DEMO_UPSTREAM_PORT: String(ports.upstream),
  },
});
const stopDemo = () => {
  try {
    process.kill(-demo.pid, 'SIGTERM');
  } catch {
    // already gone
  }
};

let browser;
try {
  let out = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start within 60 s:\n${out}`)), 60_000);
    const read = (d) => {
      out += d.toString();
      if (out.includes('Ctrl-C')) {
        clearTimeout(timer);
        resolve();
      }
    };
    demo.stdout.on('data', read);
    demo.stderr.on('data', read);
    demo.once('exit', (code) => reject(new Error(`the demo exited ${code}:\n${out}`)));
  });
  const app = `http://app.localhost:${ports.gateway}`;
  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(30_000);
  await page.goto(`${app}/`);
  await page.fill('#username', 'alice');
  await page.fill('#password', 'alice-password');
  await Promise.all([page.waitForURL(`${app}/`), page.click('button[type=submit]')]);
  await page.getByText('x-authentik-username').first().waitFor();
  await page.screenshot({ path: OUT });
  process.stdout.write(`wrote ${OUT}\n`);
} finally {
  await browser?.close();
  stopDemo();
}
