// fromAuthReply: the auth service's reply becomes the HTTP answer, Retry-After included.
import t from 'tap';
import { fromAuthReply } from './answers.ts';

t.test('a 503 JSON reply with retryAfterSeconds → a Retry-After header (the IdP retries a back-channel logout after it)', async (t) => {
  const answer = fromAuthReply({
    status: 503,
    setCookies: [],
    json: { error: 'temporarily_unavailable', error_description: 'retry' },
    retryAfterSeconds: 17,
  });
  t.equal(answer.status, 503);
  t.same(
    answer.headers.filter(([name]) => name === 'retry-after'),
    [['retry-after', '17']],
  );
  t.equal(JSON.parse(answer.body).error, 'temporarily_unavailable');
});

t.test('a page reply with retryAfterSeconds carries it too; a reply without one has no Retry-After', async (t) => {
  const page = fromAuthReply({ status: 503, setCookies: ['a=b'], page: { title: 'x', message: 'y' }, retryAfterSeconds: 1 });
  t.same(
    page.headers.filter(([name]) => name === 'retry-after' || name === 'set-cookie'),
    [
      ['set-cookie', 'a=b'],
      ['retry-after', '1'],
    ],
  );
  const plain = fromAuthReply({ status: 503, setCookies: [], json: { error: 'temporarily_unavailable' } });
  t.notOk(plain.headers.some(([name]) => name === 'retry-after'));
});
