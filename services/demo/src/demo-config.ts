// The demo's configuration: one proxy-mode app (app.localhost) behind the development IdP, on fixed loopback ports.
import { type PortcullisConfig, loadConfig } from '@portcullis/config';

/** Ports the demo uses; each can be moved with an env var if taken. */
export interface DemoPorts {
  gateway: number;
  https: number;
  metrics: number;
  idp: number;
  upstream: number;
}

/** Reads DEMO_*_PORT overrides. */
export function demoPorts(env: NodeJS.ProcessEnv): DemoPorts {
  const num = (name: string, fallback: number) => {
    const v = env[name];
    return v && /^\d+$/.test(v) ? Number(v) : fallback;
  };
  return {
    gateway: num('DEMO_GATEWAY_PORT', 9000),
    https: num('DEMO_HTTPS_PORT', 9443),
    metrics: num('DEMO_METRICS_PORT', 9300),
    idp: num('DEMO_IDP_PORT', 9100),
    upstream: num('DEMO_UPSTREAM_PORT', 9200),
  };
}

export const DEMO_CLIENT = { client_id: 'portcullis-demo', client_secret: 'demo-client-secret-not-for-production' };

/** The app's public URL (`*.localhost` resolves to loopback in browsers). */
export function demoAppUrl(ports: DemoPorts): string {
  return `http://app.localhost:${ports.gateway}`;
}

/** Builds and validates the demo config through the same loader as `portcullis run`. */
export function demoConfig(ports: DemoPorts): PortcullisConfig {
  const yaml = `
log_level: info
outpost:
  name: Portcullis Demo Outpost
  listen: { http: "127.0.0.1:${ports.gateway}", https: "127.0.0.1:${ports.https}", metrics: "127.0.0.1:${ports.metrics}" }
providers:
  - name: demo
    application_slug: demo
    mode: proxy
    external_host: ${demoAppUrl(ports)}
    internal_host: http://127.0.0.1:${ports.upstream}
    issuer: http://localhost:${ports.idp}
    client_id: ${DEMO_CLIENT.client_id}
    client_secret: ${DEMO_CLIENT.client_secret}
    scopes: [openid, profile, email, groups, entitlements, ak_proxy, offline_access]
    cookie_secret: demo-cookie-secret-change-me-0123456789
    # Re-check the user at the IdP before each access token expires (claims and mappings recomputed).
    refresh: true
    idle_timeout: 3600
    skip_path_regex: |
      ^/public/
    scope_mappings:
      - name: greeting header
        expression: '{"ak_proxy": {"user_attributes": {"additionalHeaders": {"X-Demo-Greeting": "Hello, " + request.user.name + ("admins" in request.user.groups ? " (admin)" : "")}}}}'
`;
  const r = loadConfig({ text: yaml, env: {} });
  if (!r.ok) throw new Error(`demo config invalid:\n${r.problems.map((p) => `${p.path}: ${p.reason}`).join('\n')}`);
  return r.config;
}
