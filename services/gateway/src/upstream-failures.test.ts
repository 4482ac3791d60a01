// Upstream failures are logged (what failed and why) without flooding the log when an upstream is down under load.
import t from 'tap';
import type { ProxyAnswer } from './answers.ts';
import { logUpstreamFailures } from './upstream-failures.ts';

const answer = (origin: string) => ({ kind: 'proxy', origin, path: '/', headers: {}, provider: { name: 'app' } }) as unknown as ProxyAnswer;
const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });

t.test('the first failure of an upstream is logged with its cause; more within the window are counted into the next line', async (t) => {
  const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const observed: Array<unknown> = [];
  const observe = logUpstreamFailures({ warn: (obj, msg) => lines.push({ obj: obj as Record<string, unknown>, msg }) }, (_a, _m, _s, err) => observed.push(err), 50);
  observe(answer('http://a:1'), 'GET', 0.01, refused);
  observe(answer('http://a:1'), 'GET', 0.01, refused);
  observe(answer('http://a:1'), 'POST', 0.01, refused);
  observe(answer('http://b:2'), 'GET', 0.01, refused);
  observe(answer('http://a:1'), 'GET', 0.01);
  t.equal(observed.length, 5, 'metrics see every request');
  t.equal(lines.length, 2, 'one line per upstream');
  t.match(lines[0]!.obj, { provider: 'app', upstream: 'http://a:1', method: 'GET', code: 'ECONNREFUSED', error: /ECONNREFUSED/ });
  t.notOk('more_failures_since_last_line' in lines[0]!.obj);
  t.match(lines[0]!.msg, /upstream request failed/);
  await new Promise((r) => setTimeout(r, 60));
  observe(answer('http://a:1'), 'GET', 0.01, refused);
  t.equal(lines.length, 3);
  t.equal(lines[2]!.obj.more_failures_since_last_line, 2, 'the two failures not logged are counted');
});

t.test('a client leaving mid answer is not an upstream failure', async (t) => {
  const lines: unknown[] = [];
  const observe = logUpstreamFailures({ warn: (obj) => lines.push(obj) }, undefined);
  const gone = new Error('the client closed the connection');
  gone.name = 'ClientGoneError';
  observe(answer('http://a:1'), 'GET', 0.01, gone);
  t.equal(lines.length, 0);
});
