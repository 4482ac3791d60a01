// A reload ends exactly the sessions it invalidates: a removed provider's and a changed cookie secret's; all others survive.
import { type Browser, createBrowser, loginThroughIdp } from '@portcullis/testkit';
import t from 'tap';
import { startSystem } from './support/system.ts';

const ALICE = { username: 'alice', password: 'alice-password' };

t.test('config reload and sessions', async (t) => {
  const sys = await startSystem((gw) => [
    { name: 'keep', mode: 'proxy', external_host: `http://keep.localhost:${gw}` },
    { name: 'rotate', mode: 'proxy', external_host: `http://rotate.localhost:${gw}` },
    { name: 'gone', mode: 'proxy', external_host: `http://gone.localhost:${gw}` },
  ]);
  t.teardown(() => sys.close());
  const gw = sys.gatewayPort;
  const original = sys.config;
  const url = (name: string) => `http://${name}.localhost:${gw}/page`;
  const browsers = new Map<string, Browser>();
  for (const name of ['keep', 'rotate', 'gone']) {
    const b = createBrowser({ resolve: { [`${name}.localhost`]: gw } });
    const { finalResponse } = await loginThroughIdp(b, url(name), ALICE);
    t.equal(finalResponse.status, 200, `logged in to ${name}`);
    browsers.set(name, b);
  }
  const store = () => sys.portcullis.store;
  const liveProviders = async () => (await store().listLiveSessions()).map((s) => s.provider).sort();
  t.same(await liveProviders(), ['gone', 'keep', 'rotate'], 'three live sessions');
  /** Status of a request to `name` with the browser's cookie, redirects not followed. */
  const status = async (name: string) => (await browsers.get(name)!.request(url(name))).status;

  t.test('removing a provider and changing another one cookie secret ends exactly their sessions', async (t) => {
    const next = {
      ...original,
      providers: original.providers
        .filter((p) => p.name !== 'gone')
        .map((p) => (p.name === 'rotate' ? { ...p, cookie_secret: 'a-brand-new-cookie-secret-0123456789abcdef' } : p)),
    };
    await sys.portcullis.reload(next);
    const until = Date.now() + 10_000;
    while ((await liveProviders()).length > 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    t.same(await liveProviders(), ['keep'], 'only the untouched provider keeps its session');
    t.equal(await status('keep'), 200, 'the untouched session is still accepted');
    t.equal(await status('rotate'), 302, 'the old-secret cookie sends the user to log in');
  });

  t.test('going back to the old config does not bring the ended sessions back', async (t) => {
    await sys.portcullis.reload(original);
    t.equal(await status('rotate'), 302, 'the cookie signed with the restored secret is verifiable again, but its session ended');
    t.equal(await status('gone'), 302, 'the restored provider does not revive its session');
    t.equal(await status('keep'), 200, 'the untouched session survived both reloads');
    t.same(await liveProviders(), ['keep']);
  });

  t.test('changing a provider\'s issuer ends its sessions: they were authenticated by another identity provider', async (t) => {
    const next = {
      ...original,
      providers: original.providers.map((p) => (p.name === 'keep' ? { ...p, issuer: 'http://127.0.0.1:1/another-idp' } : p)),
    };
    await sys.portcullis.reload(next);
    t.equal(await status('keep'), 302, 'the session of the old identity provider sends the user to log in');
    const until = Date.now() + 10_000;
    while ((await liveProviders()).length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    t.same(await liveProviders(), [], 'and it was ended');
  });
});
