// `portcullis run` picks up config changes (file change or SIGHUP) under traffic, validating first.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getFreePort } from '@portcullis/testkit';
import t from 'tap';
import { request } from 'undici';
import { spawnPortcullis } from './support/portcullis-process.ts';


const provider = (name: string, host: string, skip: string) => `
  - name: ${name}
    mode: forward_single
    external_host: http://${host}
    issuer: http://127.0.0.1:1/
    client_id: ${name}
    client_secret: secret
    cookie_secret: reload-test-cookie-secret-0123456789abcdef
    skip_path_regex: "${skip}"`;

const configText = (http: number, metrics: number, providers: string) => `
outpost: { listen: { http: "127.0.0.1:${http}", https: null, metrics: "127.0.0.1:${metrics}" } }
providers:${providers}
`;

async function waitForLog(out: () => string, text: string, from: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (out().slice(from).includes(text)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no log line "${text}" within ${timeoutMs} ms:\n${out().slice(from)}`);
}

t.test('config reload under traffic: applied whole, invalid files rejected, no request fails', async (t) => {
  const [http, metrics] = [await getFreePort(), await getFreePort()];
  const dir = t.testdir({});
  const file = join(dir, 'portcullis.yaml');
  const v1 = configText(http, metrics, provider('app', `app.localhost:${http}`, '^/public/'));
  writeFileSync(file, v1);
  const { child, out } = spawnPortcullis(t, ['run', '--config', file]);
  await waitForLog(out, 'portcullis started', 0, 30_000);

  const check = async (host: string, path: string) => {
    // undici.request, not fetch: fetch drops a Host header set by the caller.
    const r = await request(`http://127.0.0.1:${http}/outpost.goauthentik.io/auth/nginx`, { headers: { host, 'x-original-uri': path } });
    await r.body.dump();
    return r.statusCode;
  };
  t.equal(await check(`app.localhost:${http}`, '/public/a'), 200, 'v1: /public/ is allow-listed');
  t.equal(await check(`app.localhost:${http}`, '/open/a'), 401, 'v1: /open/ is not');

  // Traffic during every change: each answer must be 200 or 401, never an error.
  let stop = false;
  const bad: string[] = [];
  let sent = 0;
  const hammer = (async () => {
    const until = Date.now() + 30_000;
    while (!stop && Date.now() < until && sent < 50_000) {
      sent += 1;
      try {
        const s = await check(`app.localhost:${http}`, sent % 2 ? '/public/a' : '/open/a');
        if (s !== 200 && s !== 401) bad.push(`status ${s}`);
      } catch (err) {
        bad.push(String(err));
      }
    }
  })();

  // v2 by file change: a changed skip rule and a new provider.
  let mark = out().length;
  writeFileSync(file, configText(http, metrics, provider('app', `app.localhost:${http}`, '^/open/') + provider('docs', `docs.localhost:${http}`, '^/')));
  await waitForLog(out, 'config reloaded', mark);
  t.equal(await check(`app.localhost:${http}`, '/open/a'), 200, 'v2: /open/ is allow-listed now');
  t.equal(await check(`app.localhost:${http}`, '/public/a'), 401, 'v2: /public/ no longer');
  t.equal(await check(`docs.localhost:${http}`, '/anything'), 200, 'v2: the new provider serves its host');

  // An invalid file is rejected with its problems; the running config stays.
  mark = out().length;
  writeFileSync(file, configText(http, metrics, provider('app', `app.localhost:${http}`, '(unclosed')));
  await waitForLog(out, 'config reload rejected', mark);
  t.match(out().slice(mark), /skip_path_regex/, 'the log names the problem');
  t.equal(await check(`app.localhost:${http}`, '/open/a'), 200, 'still v2');

  // A change that needs a restart is refused as a whole (nothing half-applied).
  mark = out().length;
  writeFileSync(file, configText(http, metrics, provider('app', `app.localhost:${http}`, '^/public/')).replace(`"127.0.0.1:${metrics}"`, `"127.0.0.1:${metrics + 1}"`));
  await waitForLog(out, 'need a restart', mark);
  t.equal(await check(`app.localhost:${http}`, '/open/a'), 200, 'the skip-rule change in the same file was not applied either');

  // Settings read once at start: the rest of the file is applied, and the log says which wait for a restart.
  mark = out().length;
  writeFileSync(
    file,
    configText(http, metrics, provider('app', `app.localhost:${http}`, '^/open/') + provider('docs', `docs.localhost:${http}`, '^/')).replace(
      'outpost: {',
      'outpost: { name: renamed, signout_propagation_timeout_ms: 999,',
    ),
  );
  await waitForLog(out, 'take effect only at the next restart', mark);
  t.match(out().slice(mark), /outpost\.signout_propagation_timeout_ms \(still \d+ ms\)/, 'the running timeout is named');
  t.match(out().slice(mark), /outpost\.name/, 'and the metrics label');
  t.equal(await check(`app.localhost:${http}`, '/open/a'), 200, 'the rest of the file was applied');

  // SIGHUP reloads too.
  writeFileSync(file, v1);
  await new Promise((r) => setTimeout(r, 50));
  mark = out().length;
  child.kill('SIGHUP');
  await waitForLog(out, 'config reloaded', mark);
  t.equal(await check(`app.localhost:${http}`, '/public/a'), 200, 'back to v1');

  stop = true;
  await hammer;
  t.ok(sent > 100, `traffic ran during the reloads (${sent} requests)`);
  t.same(bad.slice(0, 5), [], 'no request failed during the reloads');
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});
