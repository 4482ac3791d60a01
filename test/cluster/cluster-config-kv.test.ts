// A cluster takes its config from a NATS KV bucket: `portcullis config push` switches every replica together.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { startCluster } from './cluster-harness.ts';

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
