// A cluster takes its config from a NATS KV bucket: `portcullis config push` switches every replica together.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loginThroughIdp } from '@portcullis/testkit';
import t from 'tap';
import { request } from 'undici';
import { ALICE, COOKIE_SECRET, type Member, startCluster } from './cluster-harness.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'node_modules', '.bin', 'portcullis');
const BUCKET = 'portcullis-config';

t.test('config from NATS KV: pushed once, applied by every gateway; an invalid document is refused', async (t) => {
  const env = { PORTCULLIS_CLUSTER__NATS__CONFIG_BUCKET: BUCKET };
  const c = await startCluster({ gateway: 2, auth: 1, session: 1, env: () => env });
  t.teardown(() => c.close());
  const statusOn = async (port: number, path: string) => {
    const r = await request(`http://127.0.0.1:${port}${path}`, { headers: { host: c.appHost } });
    await r.body.dump();
    return r.statusCode;
  };
  const gateways = c.gateways();
  for (const g of gateways) t.equal(await statusOn(g.http, '/open/x'), 302, 'before: /open/ needs a login');

  const dir = t.testdir({});
  const push = (file: string) =>
    spawnSync(BIN, ['config', 'push', file, '--config', c.configFile], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });

  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, readFileSync(c.configFile, 'utf8').replace('cookie_secret:', 'cookie_secret: short\n    x_cookie_secret:'));
  const refused = push(bad);
  t.equal(refused.status, 2, 'an invalid document is refused before it reaches the bucket');
  t.match(refused.stderr, /nothing was pushed/);

  const next = join(dir, 'next.yaml');
  writeFileSync(next, readFileSync(c.configFile, 'utf8').replace('    scopes: [openid, profile, email, groups]\n', '    scopes: [openid, profile, email, groups]\n    skip_path_regex: "^/open/"\n'));
  const pushed = push(next);
  t.equal(pushed.status, 0, pushed.stderr);
  t.match(pushed.stdout, /revision \d+/);

  for (const g of gateways) {
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = await statusOn(g.http, '/open/x');
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    t.equal(status, 200, `gateway ${g.index} applied the shared config`);
    t.equal(await statusOn(g.http, '/private'), 302, `gateway ${g.index} still protects the rest`);
    t.match(g.output(), /shared config applied/);
  }
});

t.test('a replica (re)started after a push starts on the shared document: its first reconcile keeps sessions signed with the pushed cookie secret', async (t) => {
  const env = { PORTCULLIS_CLUSTER__NATS__CONFIG_BUCKET: BUCKET };
  const c = await startCluster({ gateway: 1, auth: 1, session: 1, env: () => env });
  t.teardown(() => c.close());
  const waitForLine = async (m: Member, line: RegExp, what: string) => {
    for (let i = 0; i < 300; i++) {
      if (line.test(m.output())) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    t.fail(`${m.role}[${m.index}]: no ${what} in its log`);
  };
  const dir = t.testdir({});
  const next = join(dir, 'next.yaml');
  // A new cookie secret, only in the shared document: the file every process starts from keeps the old one.
  writeFileSync(next, readFileSync(c.configFile, 'utf8').replace(COOKIE_SECRET, `${COOKIE_SECRET}-rotated`));
  const pushed = spawnSync(BIN, ['config', 'push', next, '--config', c.configFile], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  t.equal(pushed.status, 0, pushed.stderr);
  for (const m of c.members) await waitForLine(m, /shared config applied/, 'shared config applied');

  const jar = c.newJar();
  await loginThroughIdp(c.browserOn(0, jar), `${c.app}/`, ALICE);
  const statusOf = async () => (await c.browserOn(0, jar).request(`${c.app}/`)).status;
  t.equal(await statusOf(), 200, 'logged in under the pushed secret');

  const session = c.members.find((m) => m.role === 'session')!;
  await c.stop(session);
  await c.start(session);
  t.match(session.output(), /starting on the shared config/, 'the restarted replica read the document before starting');
  await waitForLine(session, /sessions reconciled with the config/, 'reconcile');
  t.notMatch(session.output(), /ended: its cookie secret changed/, 'the first reconcile judged by the document, not the file');
  t.equal(await statusOf(), 200, 'the session survived the restart');
});

t.test('SIGHUP to a process that follows the shared config does not end it: without an HTTPS listener there is no certificate to reload, it says so, and keeps serving', async (t) => {
  const env = { PORTCULLIS_CLUSTER__NATS__CONFIG_BUCKET: BUCKET };
  const c = await startCluster({ gateway: 1, auth: 1, session: 1, env: () => env });
  t.teardown(() => c.close());
  for (const m of c.members) m.child.kill('SIGHUP');
  await new Promise((r) => setTimeout(r, 1000));
  for (const m of c.members) {
    t.equal(m.child.signalCode, null, `${m.role}[${m.index}] was not killed by SIGHUP`);
    t.equal(m.child.exitCode, null, `${m.role}[${m.index}] is still running`);
    t.match(m.output(), /SIGHUP: this process has no HTTPS listener, so no certificate to reload/, `${m.role}[${m.index}] says why nothing was reloaded`);
  }
  const r = await request(`http://127.0.0.1:${c.gateways()[0]!.http}/private`, { headers: { host: c.appHost } });
  await r.body.dump();
  t.equal(r.statusCode, 302, 'the gateway still serves');
});

t.test('reading or pushing the shared config leaves the event stream retention the services set (the local file may allow shorter sessions)', async (t) => {
  const env = { PORTCULLIS_CLUSTER__NATS__CONFIG_BUCKET: BUCKET };
  const c = await startCluster({ gateway: 1, auth: 1, session: 1, env: () => env });
  t.teardown(() => c.close());
  /** The stream's max_age in seconds, as a NATS node reports it. */
  const maxAge = async (): Promise<number | undefined> => {
    for (const s of c.nats.servers) {
      const res = await fetch(`${s.monitorUrl}/jsz?streams=true&config=true`).catch(() => null);
      const jsz = (await res?.json().catch(() => null)) as { account_details?: Array<{ stream_detail?: Array<{ name: string; config?: { max_age?: number } }> }> } | null;
      const detail = jsz?.account_details?.flatMap((a) => a.stream_detail ?? []).find((d) => d.name === 'PORTCULLIS_SESSIONS');
      if (detail?.config?.max_age !== undefined) return detail.config.max_age / 1e9;
    }
    return undefined;
  };
  const dir = t.testdir({});
  const push = (file: string) =>
    spawnSync(BIN, ['config', 'push', file, '--config', c.configFile], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  // The document allows week-long sessions; the file every process and the admin start from, a day.
  const week = join(dir, 'week.yaml');
  writeFileSync(week, readFileSync(c.configFile, 'utf8').replace('    scopes: [openid, profile, email, groups]\n', '    scopes: [openid, profile, email, groups]\n    access_token_validity: 604800\n'));
  t.equal(push(week).status, 0);
  for (const m of c.members) {
    await c.stop(m);
    await c.start(m);
  }
  const weekAndADay = 604_800 + 86_400;
  t.equal(await maxAge(), weekAndADay, 'replicas started on the document keep events for its sessions');
  // An operator pushes a change from a shell whose local file still says a day.
  const next = join(dir, 'next.yaml');
  writeFileSync(next, readFileSync(week, 'utf8').replace('    access_token_validity: 604800\n', '    access_token_validity: 604800\n    skip_path_regex: "^/open/"\n'));
  t.equal(push(next).status, 0);
  t.equal(await maxAge(), weekAndADay, 'the push did not cut the retention to the local file\'s sessions (events of week-long sessions would be purged)');
  // A replica restarting reads the document first: that read must not cut it either (checked at its end state and by the push above).
  const gateway = c.gateways()[0]!;
  await c.stop(gateway);
  await c.start(gateway);
  t.equal(await maxAge(), weekAndADay, 'a restarted replica leaves it as well');
  // So does an admin command run from that shell.
  const list = spawnSync(BIN, ['sessions', 'list', '--config', c.configFile], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  t.equal(list.status, 0, list.stderr);
  t.equal(await maxAge(), weekAndADay, "'portcullis sessions' leaves it as well");
});
