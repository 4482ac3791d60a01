// The README's Caddy snippet (forward auth, single application) passes the same real-Caddy scenarios as infra/front-proxies/caddy.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { runFrontProxyScenarios } from './front-proxy-scenarios.ts';
import { type TemplateValues, renderExample, startCaddy } from './servers.ts';

const README = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
const snippet = /```caddyfile\n([\s\S]*?)```/.exec(README)?.[1];

/** The README's snippet with its example names (app.company, portcullis:9000, app:8080) replaced by the test's. */
function renderReadmeSnippet(values: TemplateValues): string {
  if (!snippet) throw new Error('README.md has no ```caddyfile block');
  return snippet
    .replace(/^app\.company \{/m, `${values.APP_HOST}:${values.LISTEN} {`)
    .replaceAll('portcullis:9000', values.PORTCULLIS)
    .replaceAll('app:8080', values.UPSTREAM);
}

await runFrontProxyScenarios(t, {
  loginRedirect: 'idp',
  start: (values) =>
    startCaddy({
      port: values.LISTEN,
      // The README shows the single-application site; the domain-level one comes from the tested example.
      siteBlocks: [renderReadmeSnippet(values), renderExample('caddy/domain.Caddyfile', values)].join('\n'),
    }),
});
