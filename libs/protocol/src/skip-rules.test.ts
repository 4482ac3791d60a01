// Tests for skip_path_regex compilation (RE2 syntax), unanchored matching and the subject per mode.
import t from 'tap';
import { compileSkipRules, matchesSkipRule, skipSubject } from './skip-rules.ts';

t.test('each non-blank line becomes one rule; blank lines match nothing', async (t) => {
  const { rules, errors } = compileSkipRules('^/public/\n\n   \n^/health$\r\n\t\n');
  t.strictSame(errors, []);
  t.strictSame(rules.sources, ['^/public/', '^/health$']);
  t.equal(matchesSkipRule(rules, '/public/x'), true);
  t.equal(matchesSkipRule(rules, '/health'), true);
  t.equal(matchesSkipRule(rules, '/health\r'), false, 'the \\r was trimmed from the pattern, not kept');
  t.equal(matchesSkipRule(rules, '/private'), false, 'a trailing newline does not open every path');
  t.equal(matchesSkipRule(rules, ''), false);
});

t.test('empty text compiles to no rules that match nothing', async (t) => {
  const { rules, errors } = compileSkipRules('');
  t.strictSame(errors, []);
  t.equal(rules.sources.length, 0);
  t.equal(matchesSkipRule(rules, '/anything'), false);
});

t.test('matching is unanchored like Go MatchString', async (t) => {
  const { rules } = compileSkipRules('/static/');
  t.equal(matchesSkipRule(rules, '/static/app.js'), true);
  t.equal(matchesSkipRule(rules, '/admin/static/x'), true);
  t.equal(matchesSkipRule(rules, '/statics'), false);
});

t.test('Go RE2 syntax is supported and lookarounds and backreferences are errors', async (t) => {
  const { rules, errors } = compileSkipRules(
    ['^/api/v[0-9]+/public$', '(?i)^/ASSETS/', '^/\\Qa.b\\E$', '^/p/\\pL+$', '(?P<name>^/named/)', '^/(?!admin)', '^/(a)\\1$', '^/[unclosed', '*bad'].join('\n'),
  );
  t.strictSame(
    errors.map((e) => e.line),
    [6, 7, 8, 9],
  );
  for (const error of errors) t.ok(error.message.length > 0, `line ${error.line} has a message`);
  t.equal(rules.sources.length, 5, 'good lines are kept');
  const matches: Array<[string, boolean]> = [
    ['/api/v2/public', true],
    ['/api/v2/public/x', false],
    ['/assets/x', true],
    ['/a.b', true],
    ['/axb', false],
    ['/p/café', true],
    ['/p/123', false],
    ['/named/x', true],
    ['/admin', false],
  ];
  for (const [subject, expected] of matches) t.equal(matchesSkipRule(rules, subject), expected, subject);
});

t.test('error line numbers are 1-based and count blank lines', async (t) => {
  const { errors } = compileSkipRules('\n^/ok\n\n(\n');
  t.strictSame(
    errors.map((e) => e.line),
    [4],
  );
});

t.test('skip subject is the path in proxy and forward_single, the whole URL in forward_domain', async (t) => {
  const cases: Array<[Parameters<typeof skipSubject>[0], { protocol: string; host: string; pathname: string }, string]> = [
    ['proxy', { protocol: 'https:', host: 'app.company', pathname: '/a/b' }, '/a/b'],
    ['forward_single', { protocol: 'https:', host: 'app.company:8443', pathname: '/a' }, '/a'],
    ['forward_domain', { protocol: 'https:', host: 'App.Company', pathname: '/a' }, 'https://app.company/a'],
    ['forward_domain', { protocol: 'https:', host: 'app.company:443', pathname: '/a' }, 'https://app.company/a'],
    ['forward_domain', { protocol: 'http:', host: 'app.company:80', pathname: '/' }, 'http://app.company/'],
    ['forward_domain', { protocol: 'http:', host: 'app.company:443', pathname: '/' }, 'http://app.company:443/'],
    ['forward_domain', { protocol: 'https:', host: 'app.company:8443', pathname: '/x' }, 'https://app.company:8443/x'],
  ];
  for (const [mode, url, expected] of cases) t.equal(skipSubject(mode, url), expected, `${mode} ${url.host}${url.pathname}`);
  const fromUrl = new URL('https://App.Company:443/p?q=1');
  t.equal(skipSubject('forward_domain', fromUrl), 'https://app.company/p', 'a URL object works and the query is left out');
});

t.test('forward_domain rules anchored on the host do not match look-alike hosts', async (t) => {
  const { rules } = compileSkipRules('^https://public\\.company\\.com/');
  t.equal(matchesSkipRule(rules, skipSubject('forward_domain', new URL('https://public.company.com/x'))), true);
  t.equal(matchesSkipRule(rules, skipSubject('forward_domain', new URL('https://public.company.com.evil.org/x'))), false);
  t.equal(matchesSkipRule(rules, skipSubject('forward_domain', new URL('https://private.company.com/public.company.com/'))), false);
});

t.test('a rule that says only "starts with" is tested as a prefix, with the answer RE2 gives (tricky and random rules)', async (t) => {
  const { RE2JS } = await import('re2js');
  const { literalPrefix } = await import('./skip-rules.ts');
  t.equal(literalPrefix('^/public/'), '/public/');
  t.equal(literalPrefix('^/static/.*'), '/static/');
  t.equal(literalPrefix('^/a\\.b\\/c\\-d'), '/a.b/c-d', 'escaped punctuation is literal');
  t.equal(literalPrefix('^'), '');
  t.equal(literalPrefix('^.*'), '');
  for (const notLiteral of ['/public/', '^/a.b', '^/a\\.*', '^/a*.*', '^/x$', '^/v[0-9]', '(?i)^/a', '^/\\d', '^/\\Qa\\E', '^/a|^/b', '^/a\\', '^/\\pL', '^/a.+']) {
    t.equal(literalPrefix(notLiteral), null, `${notLiteral} is left to RE2`);
  }
  // Every rule the compiled set tests as a prefix must give RE2's answer; the others go to RE2 anyway.
  const ruleAtoms = ['a', 'b', '/', '.', '*', '\\.', '\\/', '\\\\', '\\*', '$', '.*', '-', 'é', ' ', '\n', '+', '?', '\\d', '[a]', '|'];
  const subjectChars = ['a', 'b', '/', '.', '*', '\\', '$', '-', 'é', ' ', '\n', '+', '?', '1', '|', '['];
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed % n;
  };
  let compared = 0;
  let prefixRules = 0;
  for (let r = 0; r < 3000; r++) {
    let source = '^';
    for (let i = random(6); i > 0; i--) source += ruleAtoms[random(ruleAtoms.length)];
    let re: InstanceType<typeof RE2JS>;
    try {
      re = RE2JS.compile(source);
    } catch {
      continue;
    }
    const prefix = literalPrefix(source);
    if (prefix === null) continue;
    prefixRules++;
    const { rules } = compileSkipRules(source);
    for (let s = 0; s < 20; s++) {
      let subject = s % 4 === 0 ? prefix : '';
      for (let i = random(8); i > 0; i--) subject += subjectChars[random(subjectChars.length)];
      if (matchesSkipRule(rules, subject) !== re.test(subject)) {
        t.fail(`${JSON.stringify(source)} on ${JSON.stringify(subject)}: prefix ${matchesSkipRule(rules, subject)}, RE2 ${re.test(subject)}`);
        return;
      }
      compared++;
    }
  }
  t.ok(prefixRules > 300, `${prefixRules} random rules were prefix rules`);
  t.ok(compared > 6000, `${compared} subjects agreed with RE2`);
});
