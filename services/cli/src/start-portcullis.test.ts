// startPortcullis's reload is all or nothing (a new auth service that cannot start leaves the running configuration whole), one at a time.
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Subscription } from '@portcullis/bus';
import { loadConfig, type PortcullisConfig } from '@portcullis/config';
import { createLogger } from '@portcullis/telemetry';
import { createSelfSignedCertificate, getFreePort } from '@portcullis/testkit';
import t from 'tap';
import { request } from 'undici';
import { startPortcullis } from './start-portcullis.ts';

function configFor(http: number, skip: string): PortcullisConfig {
  const loaded = loadConfig({
    env: {},
    text: `
log_level: silent
outpost: { listen: { http: "127.0.0.1:${http}", https: null, metrics: null } }
providers:
  - name: app
    mode: forward_single
    external_host: http://app.localhost:${http}
    issuer: http://127.0.0.1:1/
    client_id: app
    client_secret: secret
    cookie_secret: reload-test-cookie-secret-0123456789abcdef
    skip_path_regex: "${skip}"
`,
  });
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => `${p.path}: ${p.reason}`).join('\n'));
  return loaded.config;
}

t.test('a reload whose new auth service fails to start changes nothing, and leaves no half-started service behind', async (t) => {
  const http = await getFreePort();
  const running = await startPortcullis({
    config: configFor(http, '^/public/'),
    roles: new Set(['gateway', 'auth', 'session']),
    logger: createLogger({ level: 'silent', service: 'portcullis-test' }),
  });
  t.teardown(() => running.stop());
  const decide = async (path: string) => {
    const r = await request(`http://127.0.0.1:${http}/outpost.goauthentik.io/auth/nginx`, { headers: { host: `app.localhost:${http}`, 'x-original-uri': path } });
    await r.body.dump();
    return r.statusCode;
  };
  t.equal(await decide('/open/a'), 401, 'before: /open/ is not allow-listed');

  // The bus refuses the new service's third subscription (as a NATS connection closing under it would).
  const rpc = running.bus.rpc;
  const serve = rpc.serve.bind(rpc);
  let calls = 0;
  const opened: string[] = [];
  const closed: string[] = [];
  rpc.serve = (subject, handler): Subscription => {
    if (++calls === 3) throw new Error('connection closed');
    const sub = serve(subject, handler);
    opened.push(subject);
    return {
      close: async () => {
        closed.push(subject);
        await sub.close();
      },
    };
  };
  await t.rejects(running.reload(configFor(http, '^/(public|open)/')), {
    code: 'PORTCULLIS_STARTUP',
    message: /auth service could not start with the new configuration, so nothing was applied: connection closed/,
  });
  t.equal(await decide('/open/a'), 401, 'the gateway still runs the old configuration');
  t.equal(opened.length, 2, 'two subscriptions were made before the failure');
  t.same(closed.sort(), opened.sort(), 'and both were closed again');

  rpc.serve = serve;
  await running.reload(configFor(http, '^/(public|open)/'));
  t.equal(await decide('/open/a'), 200, 'the same reload applies once the auth service can start');
});

t.test('reloads take turns: a certificate reload asked for while a config reload is under way runs after it, on the files of the config it applied', async (t) => {
  const dir = t.testdir({});
  const [http, https] = [await getFreePort(), await getFreePort()];
  const configWith = (name: string): PortcullisConfig => {
    const pair = createSelfSignedCertificate({ commonName: name, altNames: ['app.localhost'] });
    writeFileSync(join(dir, `${name}.crt`), pair.cert);
    writeFileSync(join(dir, `${name}.key`), pair.key);
    const config = configFor(http, '^/public/');
    return {
      ...config,
      outpost: { ...config.outpost, listen: { ...config.outpost.listen, https: `127.0.0.1:${https}` } },
      providers: config.providers.map((p) => ({ ...p, tls: { cert_file: join(dir, `${name}.crt`), key_file: join(dir, `${name}.key`) } })),
    };
  };
  const running = await startPortcullis({
    config: configWith('first'),
    roles: new Set(['gateway', 'auth', 'session']),
    logger: createLogger({ level: 'silent', service: 'portcullis-test' }),
  });
  t.teardown(() => running.stop());

  const order: string[] = [];
  // The config reload awaits its new auth service's start before it hands the gateway the new files.
  const reloaded = running.reload(configWith('second')).then(() => order.push('config reload'));
  const certificates = running.reloadCertificates().then((result) => {
    order.push('certificate reload');
    return result;
  });
  const [, result] = await Promise.all([reloaded, certificates]);
  t.same(order, ['config reload', 'certificate reload'], 'the certificate reload waited for the config reload');
  t.match(result, { outcome: 'reloaded', certificates: [{ cert_file: join(dir, 'second.crt') }] }, 'and read the files the new config names');
});

t.test('a certificate reload is not held back by the expired certificate another provider is still serving; an expired replacement still is refused', async (t) => {
  const dir = t.testdir({});
  const [http, https] = [await getFreePort(), await getFreePort()];
  const install = (name: string, pair: { cert: string; key: string }) => {
    writeFileSync(join(dir, `${name}.crt`), pair.cert);
    writeFileSync(join(dir, `${name}.key`), pair.key);
  };
  const EXPIRED = { notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') };
  install('old', createSelfSignedCertificate({ altNames: ['old.localhost'], ...EXPIRED }));
  install('new', createSelfSignedCertificate({ altNames: ['new.localhost'] }));
  const provider = (name: string, n: number) => `
  - name: ${name}
    mode: forward_single
    external_host: https://${name}.localhost
    issuer: http://127.0.0.1:1/
    client_id: client-${n}
    client_secret: secret
    cookie_secret: reload-test-cookie-secret-0123456789abcdef
    tls: { cert_file: ${join(dir, `${name}.crt`)}, key_file: ${join(dir, `${name}.key`)} }`;
  const loaded = loadConfig({
    env: {},
    text: `
log_level: silent
outpost: { listen: { http: "127.0.0.1:${http}", https: "127.0.0.1:${https}", metrics: null } }
providers:${provider('old', 1)}${provider('new', 2)}
`,
  });
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => `${p.path}: ${p.reason}`).join('\n'));
  t.match(loaded.warnings.map((w) => w.reason).join('\n'), /expired on 2021-01-01/, 'an expired certificate is a warning at start');
  const running = await startPortcullis({ config: loaded.config, roles: new Set(['gateway', 'auth', 'session']), logger: createLogger({ level: 'silent', service: 'portcullis-test' }) });
  t.teardown(() => running.stop());
  const served = (name: string) => running.gateway?.certificates?.find((c) => c.provider === name)?.sha256;
  const expiredInUse = served('old');

  const renewed = createSelfSignedCertificate({ altNames: ['new.localhost'] });
  install('new', renewed);
  const result = await running.reloadCertificates();
  t.equal(result.outcome, 'reloaded', "the other provider's renewal is applied");
  t.equal(served('new'), new X509Certificate(renewed.cert).fingerprint256, 'the renewed certificate is served');
  t.equal(served('old'), expiredInUse, 'the expired one is still the one served');
  t.match(
    result.outcome === 'reloaded' ? result.warnings.map((w) => `${w.path}: ${w.reason}`).join('\n') : '',
    /providers\[0\]\.tls\.cert_file: the certificate in .*old\.crt expired on 2021-01-01T00:00:00Z.*being served, which this reload keeps/,
    'and its expiry is said as a warning',
  );

  install('old', createSelfSignedCertificate({ altNames: ['old.localhost'], ...EXPIRED }));
  const refused = await running.reloadCertificates();
  t.match(refused, { outcome: 'rejected', problems: [{ path: 'providers[0].tls.cert_file', reason: /expired on 2021-01-01/ }] }, 'another expired certificate is not swapped in');
  t.equal(served('old'), expiredInUse, 'what was served stays');
});

t.test('a certificate file rewritten between its check and its loading is refused, and what was served stays', async (t) => {
  const dir = t.testdir({});
  const [http, https] = [await getFreePort(), await getFreePort()];
  const install = (pair: { cert: string; key: string }) => {
    writeFileSync(join(dir, 'app.crt'), pair.cert);
    writeFileSync(join(dir, 'app.key'), pair.key);
  };
  install(createSelfSignedCertificate({ altNames: ['app.localhost'] }));
  const config = configFor(http, '^/public/');
  const withTls: PortcullisConfig = {
    ...config,
    outpost: { ...config.outpost, listen: { ...config.outpost.listen, https: `127.0.0.1:${https}` } },
    providers: config.providers.map((p) => ({ ...p, tls: { cert_file: join(dir, 'app.crt'), key_file: join(dir, 'app.key') } })),
  };
  // The real check runs on the renewed files; right after it, a rotation writes an expired pair in their place.
  let afterCheck: (() => void) | undefined;
  const configLib = await import('@portcullis/config');
  const { startPortcullis: start } = await t.mockImport<typeof import('./start-portcullis.ts')>('./start-portcullis.ts', {
    '@portcullis/config': {
      ...configLib,
      checkServerCertificates: (...args: Parameters<typeof configLib.checkServerCertificates>) => {
        const checked = configLib.checkServerCertificates(...args);
        afterCheck?.();
        return checked;
      },
    },
  });
  const running = await start({ config: withTls, roles: new Set(['gateway', 'auth', 'session']), logger: createLogger({ level: 'silent', service: 'portcullis-test' }) });
  t.teardown(() => running.stop());
  const served = () => running.gateway?.certificates?.[0]?.sha256;
  const before = served();

  const renewed = createSelfSignedCertificate({ altNames: ['app.localhost'] });
  const expired = createSelfSignedCertificate({ altNames: ['app.localhost'], notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') });
  install(renewed);
  afterCheck = () => install(expired);
  const refused = await running.reloadCertificates();
  t.match(
    refused,
    { outcome: 'rejected', problems: [{ path: 'providers[0].tls.cert_file', reason: /app\.crt changed between its check and its loading .*was not checked/, fix: /send SIGHUP again/ }] },
    'the unchecked (expired) certificate is refused',
  );
  t.equal(served(), before, 'what was served before stays served');

  afterCheck = undefined;
  install(renewed);
  const applied = await running.reloadCertificates();
  t.equal(applied.outcome, 'reloaded', 'the next reload, with nothing rewritten under it, applies the renewal');
  t.equal(served(), new X509Certificate(renewed.cert).fingerprint256);
});
