// Session lifecycle across a real cluster: refresh tokens (one refresh per session cluster-wide, new claims on every
// replica, a refused refresh ends the session everywhere) and the idle timeout.
import t from 'tap';
import { startCluster } from './cluster-harness.ts';
import { GatewayClients, type LoggedIn, loginVia, sleep } from './cluster-traffic.ts';

/** The IdP's access tokens live this long (s): the refresher runs about every 10 s per session. */
const ACCESS_TOKEN_TTL_S = 12;
const IDLE_TIMEOUT_S = 10;

const DAVE = { username: 'dave', password: 'dave-password' };
const ERIN = { username: 'erin', password: 'erin-password' };
const FRANK = { username: 'frank', password: 'frank-password' };

/** Polls `check` every 250 ms; resolves with the elapsed ms, or rejects naming `what` after `timeoutMs`. */
async function within(timeoutMs: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
  return Date.now() - started;
}

t.test('cluster: refresh tokens and idle timeout', async (t) => {
  const users = [DAVE, ERIN, FRANK].map((u) => ({
    ...u,
    email: `${u.username}@example.com`,
    name: u.username,
    groups: ['admins', 'users'],
  }));
  const c = await startCluster({
    gateway: 2,
    auth: 2,
    session: 2,
    users,
    idpTtl: { AccessToken: ACCESS_TOKEN_TTL_S },
    // A refresh token is good for one use: two replicas refreshing the same session would be caught.
    rotateRefreshTokens: true,
    appProvider: { refresh: true, idle_timeout: IDLE_TIMEOUT_S },
  });
  t.teardown(() => c.close());
  const clients = new GatewayClients(c);
  t.teardown(() => clients.close());

  // Every refresh grant the IdP answers, and every one it refuses, per grant (the refresh token's grant id).
  const refreshes: Array<{ at: number; ok: boolean }> = [];
  c.idp.provider.on('grant.success', (ctx) => {
    if (ctx.oidc.params?.['grant_type'] === 'refresh_token') refreshes.push({ at: Date.now(), ok: true });
  });
  c.idp.provider.on('grant.error', (ctx) => {
    if (ctx.oidc.params?.['grant_type'] === 'refresh_token') refreshes.push({ at: Date.now(), ok: false });
  });

  /** The identity the upstream saw for `who` through gateway `gw` (null: not accepted). */
  const identity = async (gw: number, who: LoggedIn): Promise<{ groups: string; jwt: string } | null> => {
    const r = await clients.send(gw, who.cookie, '/');
    if (typeof r === 'string' || r.status !== 200) return null;
    const headers = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
    return { groups: headers['x-authentik-groups'] ?? '', jwt: headers['x-authentik-jwt'] ?? '' };
  };

  t.test('a refresh runs once per session across two auth replicas and brings new claims to every gateway', async (t) => {
    const dave = await loginVia(c, 0, DAVE);
    const before = await identity(1, dave);
    t.match(before?.groups, /admins/, 'dave is an admin at login, as seen through gateway 1');
    c.idp.users.find((u) => u.username === 'dave')!.groups = ['users'];
    const startedAt = Date.now();
    // Keep the session busy (so the idle timeout never applies) until both gateways see the new groups.
    await within(40_000, 'both gateways to show the refreshed groups', async () => {
      const [a, b] = [await identity(0, dave), await identity(1, dave)];
      return a !== null && b !== null && !a.groups.includes('admins') && !b.groups.includes('admins');
    });
    t.pass(`the removed group disappeared on both gateways ${Date.now() - startedAt} ms after it was removed at the IdP`);
    const after = await identity(0, dave);
    t.not(after?.jwt, before?.jwt, 'X-authentik-jwt carries the refreshed access token');
    // Two more refresh cycles with rotation: a concurrent double refresh would make the IdP refuse one (grant.error).
    await within(45_000, 'two more refreshes', async () => {
      await identity(Date.now() % 2, dave);
      return refreshes.filter((r) => r.ok).length >= 3;
    });
    t.same(
      refreshes.filter((r) => !r.ok),
      [],
      'the IdP refused no refresh (never two replicas with the same rotated token)',
    );
    const gaps = refreshes.slice(1).map((r, i) => r.at - refreshes[i]!.at);
    t.ok(
      gaps.every((g) => g > 3000),
      `one refresh per cycle, never two in a row (gaps between refresh grants: ${gaps.join(', ')} ms)`,
    );
    for (const gw of [0, 1]) t.not(await identity(gw, dave), null, `gateway ${gw} still accepts dave after ${refreshes.length} refreshes`);
  });

  t.test('a refresh the IdP refuses (user disabled) ends the session on every gateway', async (t) => {
    const erin = await loginVia(c, 1, ERIN);
    for (const gw of [0, 1]) t.not(await identity(gw, erin), null, `gateway ${gw} accepts erin`);
    c.idp.users.find((u) => u.username === 'erin')!.disabled = true;
    const ms = await within(40_000, 'every gateway to refuse erin', async () => (await identity(0, erin)) === null && (await identity(1, erin)) === null);
    t.pass(`erin's session ended everywhere ${ms} ms after she was disabled (access tokens live ${ACCESS_TOKEN_TTL_S} s)`);
    t.equal(await clients.get(0, erin.cookie), 302, 'gateway 0 sends her to log in again');
    t.ok(refreshes.some((r) => !r.ok), 'the IdP refused a refresh grant');
  });

  t.test('an idle session ends; a used one does not', async (t) => {
    const idle = await loginVia(c, 0, FRANK);
    const busy = await loginVia(c, 1, FRANK);
    const loggedInAt = Date.now();
    // The sweeper ends a session idle_timeout + one report interval (idle/5) after its last use, checking every
    // idle/5: by idle + 8 s it must be gone. Probing an accepted session counts as use, so probe it once, then.
    const probeAt = loggedInAt + (IDLE_TIMEOUT_S + 8) * 1000;
    let idleOutcome: unknown = null;
    let busyRefused = 0;
    let busyUses = 0;
    // Use `busy` on alternating gateways every second; `idle` is never touched before its probe.
    while (Date.now() - loggedInAt < (IDLE_TIMEOUT_S + 15) * 1000) {
      busyUses++;
      if ((await identity(busyUses % 2, busy)) === null) busyRefused++;
      if (idleOutcome === null && Date.now() >= probeAt) idleOutcome = await clients.get(1, idle.cookie);
      await sleep(1000);
    }
    t.equal(idleOutcome, 302, `the session unused since login is refused ${IDLE_TIMEOUT_S + 8} s after it (idle_timeout ${IDLE_TIMEOUT_S} s)`);
    t.equal(busyRefused, 0, `the session used every second was accepted all ${busyUses} times over ${IDLE_TIMEOUT_S + 15} s`);
  });
});
