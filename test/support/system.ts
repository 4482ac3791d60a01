// Starts a whole embedded Portcullis (real IdP, real upstream, the CLI's wiring) for system tests.
import { ROLES, type RunningPortcullis, startPortcullis } from '@portcullis/cli';
import { type PortcullisConfig, loadConfig } from '@portcullis/config';
import { createLogger } from '@portcullis/telemetry';
import { type Idp, type Upstream, getFreePort, startIdp, startUpstream } from '@portcullis/testkit';

export const COOKIE_SECRET = 'system-test-cookie-secret-0123456789';

/** Validates YAML through the real loader; throws with every problem. */
export function configFrom(yaml: string): PortcullisConfig {
  const r = loadConfig({ text: yaml, env: {} });
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.reason}`).join('\n'));
  return r.config;
}

export interface ProviderSpec {
  name: string;
  mode: 'proxy' | 'forward_single' | 'forward_domain';
  external_host: string;
  cookie_domain?: string;
  skip_path_regex?: string;
  scope_mappings?: Array<{ name: string; expression: string }>;
  post_logout_redirect_uri?: string;
  intercept_header_auth?: boolean;
}

/** Renders the provider list (client ids = names; secrets fixed). */
export function providersYaml(specs: ProviderSpec[], idp: Idp, upstream: Upstream): string {
  return specs
    .map((s) =>
      [
        `  - name: ${s.name}`,
        `    mode: ${s.mode}`,
        `    external_host: ${s.external_host}`,
        s.mode === 'proxy' ? `    internal_host: ${upstream.url}` : '',
        `    issuer: ${idp.issuer}`,
        `    client_id: ${s.name}`,
        `    client_secret: ${s.name}-secret`,
        `    cookie_secret: ${COOKIE_SECRET}`,
        '    scopes: [openid, profile, email, groups, entitlements, ak_proxy]',
        s.cookie_domain ? `    cookie_domain: ${s.cookie_domain}` : '',
        s.skip_path_regex ? `    skip_path_regex: ${JSON.stringify(s.skip_path_regex)}` : '',
        s.post_logout_redirect_uri ? `    post_logout_redirect_uri: ${s.post_logout_redirect_uri}` : '',
        s.intercept_header_auth === undefined ? '' : `    intercept_header_auth: ${s.intercept_header_auth}`,
        s.scope_mappings ? `    scope_mappings: ${JSON.stringify(s.scope_mappings)}` : '',
      ]
        .filter(Boolean)
        .join('\n'),
    )
    .join('\n');
}

/** A running system: IdP, upstream, Portcullis on `gatewayPort`. */
export interface System {
  idp: Idp;
  upstream: Upstream;
  gatewayPort: number;
  config: PortcullisConfig;
  portcullis: RunningPortcullis;
  /** Stops Portcullis and starts a fresh process-equivalent with the same config (embedded state is lost). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Starts IdP + upstream + Portcullis. `specs` may use `{GW}` for the gateway port in hosts. */
export async function startSystem(specsFor: (gatewayPort: number) => ProviderSpec[]): Promise<System> {
  const gatewayPort = await getFreePort();
  const specs = specsFor(gatewayPort);
  const idp = await startIdp({
    clients: specs.map((s) => ({
      client_id: s.name,
      client_secret: `${s.name}-secret`,
      redirect_uris: [`${s.external_host}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`],
      post_logout_redirect_uris: s.post_logout_redirect_uri ? [s.post_logout_redirect_uri] : [],
      backchannel_logout_uri: `${s.external_host}/outpost.goauthentik.io/backchannel-logout`,
    })),
  });
  const upstream = await startUpstream({ name: 'upstream' });
  const config = configFrom(`
log_level: silent
outpost:
  listen: { http: "127.0.0.1:${gatewayPort}", https: null, metrics: null }
providers:
${providersYaml(specs, idp, upstream)}
`);
  const logger = createLogger({ level: 'silent', service: 'portcullis-test' });
  const system: System = {
    idp,
    upstream,
    gatewayPort,
    config,
    portcullis: await startPortcullis({ config, roles: new Set(ROLES), logger }),
    async restart() {
      await system.portcullis.stop();
      system.portcullis = await startPortcullis({ config, roles: new Set(ROLES), logger });
    },
    async close() {
      await system.portcullis.stop();
      await upstream.close();
      await idp.close();
    },
  };
  return system;
}
