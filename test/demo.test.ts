// `npm start` works as the README says: the demo app asks for a login and then shows the identity headers.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createBrowser, getFreePort, loginThroughIdp } from '@portcullis/testkit';
import t from 'tap';

const ROOT = join(import.meta.dirname, '..');

t.test('npm start: the demo logs alice in and shows her headers; sign-out works', async (t) => {
  const ports = { gateway: await getFreePort(), https: await getFreePort(), metrics: await getFreePort(), idp: await getFreePort(), upstream: await getFreePort() };
  const child = spawn('npm', ['start', '--silent'], {
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
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not start:\n${out}`)), 60_000);
    child.stdout!.on('data', (d) => {
      out += d.toString();
      if (out.includes('Demo users:') && out.includes('Ctrl-C')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (d) => {
      out += d.toString();
    });
    child.once('exit', (code) => reject(new Error(`demo exited ${code}:\n${out}`)));
  });
  const app = `http://app.localhost:${ports.gateway}`;
  t.match(out, `Open   ${app}/`, 'prints the URL to open');
  t.match(out, /alice\s+password: alice-password/, 'prints the demo users and passwords');
  t.match(out, /NOT for production/);

  const browser = createBrowser({ resolve: { 'app.localhost': ports.gateway, localhost: ports.idp } });
  const { finalResponse } = await loginThroughIdp(browser, `${app}/`, { username: 'alice', password: 'alice-password' });
  t.equal(finalResponse.status, 200);
  const page = await browser.request(`${app}/`, { headers: { accept: 'text/html' } });
  t.match(page.body, /x-authentik-username/i);
  t.match(page.body, /alice/);
  t.match(page.body, /Hello, Alice.*\(admin\)/, 'the CEL greeting mapping ran at login');
  const pub = await createBrowser({ resolve: { 'app.localhost': ports.gateway } }).request(`${app}/public/hello`);
  t.equal(pub.status, 200, 'the public path needs no login');
  const out2 = await browser.follow(`${app}/outpost.goauthentik.io/sign_out`);
  t.ok(out2.chain.length > 1);
  t.equal((await browser.request(`${app}/`)).status, 302, 'signed out');
});
