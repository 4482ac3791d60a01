// The Caddy examples (infra/front-proxies/caddy) run in a real Caddy in front of a real Portcullis, IdP and upstream.
import t from 'tap';
import { runFrontProxyScenarios } from './front-proxy-scenarios.ts';
import { renderExample, startCaddy } from './servers.ts';

await runFrontProxyScenarios(t, {
  loginRedirect: 'idp',
  start: (values) =>
    startCaddy({
      port: values.LISTEN,
      siteBlocks: [renderExample('caddy/single.Caddyfile', values), renderExample('caddy/domain.Caddyfile', values)].join('\n'),
    }),
});
