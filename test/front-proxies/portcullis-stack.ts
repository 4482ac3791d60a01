// The things behind a front proxy in these tests: a development IdP, an echoing upstream and a real in-process Portcullis with one forward_single and one forward_domain provider.
import { ROLES, type RunningPortcullis, startPortcullis } from '@portcullis/cli';
import { loadConfig } from '@portcullis/config';
import { createLogger } from '@portcullis/telemetry';
import { type Idp, type Upstream, getFreePort, startIdp, startUpstream } from '@portcullis/testkit';
import type { TemplateValues } from './servers.ts';

/** Host names the tests use; the browser's `resolve` map sends them all to the front proxy. */
export const HOSTS = {
  app: 'app.localhost',
  auth: 'auth.example.localhost',
  domain: 'example.localhost',
  wiki: 'wiki.example.localhost',
  files: 'files.example.localhost',
} as const;

const SINGLE_CLIENT = { client_id: 'front-proxy-single', client_secret: 'front-proxy-single-secret' };
const DOMAIN_CLIENT = { client_id: 'front-proxy-domain', client_secret: 'front-proxy-domain-secret' };

/** A running IdP + upstream + Portcullis, and the values that template the example configs. */
export interface PortcullisStack {
  /** The port the front proxy must listen on (the external hosts name it). */
  proxyPort: number;
  values: TemplateValues;
  /** `http://<host>:<proxyPort>`. */
  origin(host: string): string;
  idp: Idp;
  upstream: Upstream;
  portcullis: RunningPortcullis;
  close(): Promise<void>;
}

/**
 * Starts the IdP, the upstream and Portcullis. Portcullis has two providers: `single-app`
 * (forward_single on app.localhost, `^/public/` allow-listed) and `domain-apps` (forward_domain for
 * *.example.localhost with auth.example.localhost as external host, wiki's `/public/` allow-listed).
 */
export async function startPortcullisStack(): Promise<PortcullisStack> {
  const proxyPort = await getFreePort();
  const gatewayPort = await getFreePort();
  const origin = (host: string) => `http://${host}:${proxyPort}`;
  const callback = (host: string) => `${origin(host)}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`;

  const idp = await startIdp({
    clients: [
      { ...SINGLE_CLIENT, redirect_uris: [callback(HOSTS.app)] },
      { ...DOMAIN_CLIENT, redirect_uris: [callback(HOSTS.auth)] },
    ],
  });
  const upstream = await startUpstream({ name: 'protected-app' });
  // forward_domain skip rules see the whole URL, port included.
  const wikiPublic = `^http://${HOSTS.wiki.replaceAll('.', '\\.')}:${proxyPort}/public/`;
  const yaml = `
outpost:
  name: Front proxy test outpost
  listen: { http: "127.0.0.1:${gatewayPort}", https: null, metrics: null }
providers:
  - name: single-app
    application_slug: single-app
    mode: forward_single
    external_host: ${origin(HOSTS.app)}
    issuer: ${idp.issuer}
    client_id: ${SINGLE_CLIENT.client_id}
    client_secret: ${SINGLE_CLIENT.client_secret}
    scopes: [openid, profile, email, groups, entitlements, ak_proxy]
    cookie_secret: front-proxy-single-cookie-secret-0123456789
    skip_path_regex: '^/public/'
  - name: domain-apps
    application_slug: domain-apps
    mode: forward_domain
    external_host: ${origin(HOSTS.auth)}
    cookie_domain: ${HOSTS.domain}
    issuer: ${idp.issuer}
    client_id: ${DOMAIN_CLIENT.client_id}
    client_secret: ${DOMAIN_CLIENT.client_secret}
    scopes: [openid, profile, email, groups, entitlements, ak_proxy]
    cookie_secret: front-proxy-domain-cookie-secret-0123456789
    skip_path_regex: '${wikiPublic}'
`;
  const loaded = loadConfig({ text: yaml, env: {} });
  if (!loaded.ok) throw new Error(`test config invalid:\n${loaded.problems.map((p) => `${p.path}: ${p.reason}`).join('\n')}`);
  // Errors only, on stderr: tap reads the test's stdout.
  const logger = createLogger({ level: 'error', service: 'portcullis-front-proxy-test', destination: 2 });
  const portcullis = await startPortcullis({ config: loaded.config, roles: new Set(ROLES), logger });

  return {
    proxyPort,
    values: {
      PORTCULLIS: `127.0.0.1:${gatewayPort}`,
      UPSTREAM: `127.0.0.1:${upstream.port}`,
      LISTEN: proxyPort,
      APP_HOST: HOSTS.app,
      AUTH_HOST: HOSTS.auth,
      DOMAIN: HOSTS.domain,
    },
    origin,
    idp,
    upstream,
    portcullis,
    async close() {
      await portcullis.stop();
      await upstream.close();
      await idp.close();
    },
  };
}
