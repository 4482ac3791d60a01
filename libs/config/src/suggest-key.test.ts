// Tests of the did-you-mean helper.
import t from 'tap';
import { suggestKey } from './suggest-key.ts';

const KEYS = ['log_level', 'outpost', 'cluster', 'providers', 'client_secret', 'client_secret_file', 'cookie_domain'];

const cases: Array<[input: string, expected: string | undefined]> = [
  ['log_levl', 'log_level'],
  ['LOG_LEVEL', 'log_level'],
  ['logLevel', 'log_level'],
  ['provider', 'providers'],
  ['client_secert', 'client_secret'],
  ['cookie-domain', 'cookie_domain'],
  ['client_secret_fil', 'client_secret_file'],
  ['colour', undefined],
  ['x', undefined],
];

for (const [input, expected] of cases) {
  t.test(`suggestKey("${input}") → ${String(expected)}`, async (t) => {
    t.equal(suggestKey(input, KEYS), expected);
  });
}

t.test('a short word allows only one edit', async (t) => {
  t.equal(suggestKey('tlx', ['tls']), 'tls');
  t.equal(suggestKey('txx', ['tls']), undefined);
});
