// `npm start`: a development IdP, a demo upstream and Portcullis (embedded mode) in one process group.
import { ROLES, startPortcullis } from '@portcullis/cli';
import { DEMO_USERS, startIdp, startUpstream } from '@portcullis/testkit';
import { createLogger } from '@portcullis/telemetry';
import { DEMO_CLIENT, demoAppUrl, demoConfig, demoPorts } from './demo-config.ts';

const ports = demoPorts(process.env);
const appUrl = demoAppUrl(ports);
const config = demoConfig(ports);

try {
  const idp = await startIdp({
    port: ports.idp,
    issuer: `http://localhost:${ports.idp}`,
    showUsers: true,
    clients: [
      {
        ...DEMO_CLIENT,
        redirect_uris: [`${appUrl}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`],
        post_logout_redirect_uris: [`${appUrl}/`],
      },
    ],
  });
  const upstream = await startUpstream({ port: ports.upstream, name: 'Demo upstream (the protected app)' });
  const logger = createLogger({ level: process.env.DEMO_LOG_LEVEL === 'debug' ? 'debug' : 'warn', service: 'portcullis' });
  const portcullis = await startPortcullis({ config, roles: new Set(ROLES), logger });

  const users = DEMO_USERS.map((u) => `    ${u.username.padEnd(6)} password: ${u.password.padEnd(10)} groups: ${u.groups.join(', ') || '(none)'}`).join('\n');
  process.stdout.write(`
  Portcullis demo is running (embedded mode, one process). Development IdP: NOT for production.

    Open   ${appUrl}/            (proxy mode: the demo upstream behind a login)
    Public ${appUrl}/public/hello (an unauthenticated path: no login)
    Sign out ${appUrl}/outpost.goauthentik.io/sign_out
    IdP    http://localhost:${ports.idp}/.well-known/openid-configuration
    Metrics http://127.0.0.1:${ports.metrics}/metrics

  Demo users:
${users}

  Ctrl-C stops everything. Ports move with DEMO_GATEWAY_PORT, DEMO_IDP_PORT, DEMO_UPSTREAM_PORT, DEMO_HTTPS_PORT, DEMO_METRICS_PORT.
`);

  const stop = async () => {
    await portcullis.stop();
    await upstream.close();
    await idp.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE') {
    process.stderr.write(`demo: a port is already in use (${e.message}). Free it or move the demo with DEMO_GATEWAY_PORT, DEMO_IDP_PORT, DEMO_UPSTREAM_PORT, DEMO_HTTPS_PORT or DEMO_METRICS_PORT.\n`);
  } else {
    process.stderr.write(`demo failed to start: ${e.stack ?? String(err)}\n`);
  }
  process.exit(1);
}
