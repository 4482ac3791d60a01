// Unit tests of nextRefreshAt: margin before the access token expires, refresh_interval, defaults, floor, session end.
import t from 'tap';
import { nextRefreshAt } from './refresh-schedule.ts';

const now = 1_700_000_000_000;
const farEnd = now + 24 * 3600_000;

t.test('a long-lived access token is refreshed 60 s before it expires', async (t) => {
  t.equal(nextRefreshAt({ now, expiresInSeconds: 3600, refreshIntervalSeconds: null, sessionExpiresAt: farEnd }), now + 3540_000);
  t.equal(nextRefreshAt({ now, expiresInSeconds: 300, refreshIntervalSeconds: null, sessionExpiresAt: farEnd }), now + 240_000, '60 s is < 20 % of 300 s');
});

t.test('a short-lived access token keeps a 20 % margin', async (t) => {
  t.equal(nextRefreshAt({ now, expiresInSeconds: 100, refreshIntervalSeconds: null, sessionExpiresAt: farEnd }), now + 80_000);
  t.equal(nextRefreshAt({ now, expiresInSeconds: 10, refreshIntervalSeconds: null, sessionExpiresAt: farEnd }), now + 8_000);
});

t.test('never sooner than now + 5 s', async (t) => {
  t.equal(nextRefreshAt({ now, expiresInSeconds: 4, refreshIntervalSeconds: null, sessionExpiresAt: farEnd }), now + 5_000);
  t.equal(nextRefreshAt({ now, expiresInSeconds: 0, refreshIntervalSeconds: null, sessionExpiresAt: farEnd }), now + 5_000);
  t.equal(nextRefreshAt({ now, expiresInSeconds: -30, refreshIntervalSeconds: null, sessionExpiresAt: farEnd }), now + 5_000);
  t.equal(nextRefreshAt({ now, expiresInSeconds: 3600, refreshIntervalSeconds: 1, sessionExpiresAt: farEnd }), now + 5_000);
});

t.test('refresh_interval wins when it is sooner, not when it is later', async (t) => {
  t.equal(nextRefreshAt({ now, expiresInSeconds: 3600, refreshIntervalSeconds: 600, sessionExpiresAt: farEnd }), now + 600_000);
  t.equal(nextRefreshAt({ now, expiresInSeconds: 300, refreshIntervalSeconds: 600, sessionExpiresAt: farEnd }), now + 240_000);
});

t.test('no expires_in: refresh_interval, else 300 s', async (t) => {
  t.equal(nextRefreshAt({ now, expiresInSeconds: undefined, refreshIntervalSeconds: 120, sessionExpiresAt: farEnd }), now + 120_000);
  t.equal(nextRefreshAt({ now, expiresInSeconds: null, refreshIntervalSeconds: null, sessionExpiresAt: farEnd }), now + 300_000);
  t.equal(nextRefreshAt({ now, expiresInSeconds: Number.NaN, refreshIntervalSeconds: null, sessionExpiresAt: farEnd }), now + 300_000);
});

t.test('null when the refresh would not come before the session ends', async (t) => {
  t.equal(nextRefreshAt({ now, expiresInSeconds: 3600, refreshIntervalSeconds: null, sessionExpiresAt: now + 3540_000 }), null, 'exactly at the end');
  t.equal(nextRefreshAt({ now, expiresInSeconds: 3600, refreshIntervalSeconds: null, sessionExpiresAt: now + 3540_001 }), now + 3540_000);
  t.equal(nextRefreshAt({ now, expiresInSeconds: 3600, refreshIntervalSeconds: null, sessionExpiresAt: now + 1000 }), null);
  t.equal(nextRefreshAt({ now, expiresInSeconds: 1, refreshIntervalSeconds: null, sessionExpiresAt: now + 4000 }), null, 'the 5 s floor is past the end');
});

t.test('the result is a whole number of milliseconds', async (t) => {
  const at = nextRefreshAt({ now, expiresInSeconds: 7.3, refreshIntervalSeconds: null, sessionExpiresAt: farEnd });
  t.ok(Number.isInteger(at), String(at));
});
