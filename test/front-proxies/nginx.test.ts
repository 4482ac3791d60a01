// The nginx examples (infra/front-proxies/nginx) run in a real nginx in front of a real Portcullis, IdP and upstream.
import t from 'tap';
import { runFrontProxyScenarios } from './front-proxy-scenarios.ts';
import { renderExample, startNginx } from './servers.ts';

await runFrontProxyScenarios(t, {
  loginRedirect: 'outpost-start',
  start: (values) =>
    startNginx({
      port: values.LISTEN,
      serverBlocks: [renderExample('nginx/single.conf', values), renderExample('nginx/domain.conf', values)].join('\n'),
    }),
});
