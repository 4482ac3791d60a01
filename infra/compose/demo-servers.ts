// The compose cluster's demo IdP or demo upstream, one per container: `node --import tsx infra/compose/demo-servers.ts idp|upstream`.
import { readFileSync, realpathSync } from 'node:fs';
import { DEMO_USERS, startIdp, startUpstream } from '@portcullis/testkit';

/** Which demo server a container runs. */
export type DemoServerRole = 'idp' | 'upstream';

/** Everything the demo servers read from the environment, with the compose cluster's defaults. */
export interface DemoServerSettings {
  /** Address to bind; 0.0.0.0 in a container so other containers and the published port reach it. */
  bindHost: string;
  idpPort: number;
  upstreamPort: number;
  /** The IdP's issuer, as both the browser and the auth replicas reach it. */
  issuer: string;
  /** Portcullis's external host for the demo app (registered redirect and post-logout URIs). */
  appUrl: string;
  clientId: string;
  clientSecret: string;
}

/** A demo server that is running, and how to stop it. */
export interface RunningDemoServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Reads the settings: `DEMO_BIND_HOST`, `DEMO_IDP_PORT`, `DEMO_UPSTREAM_PORT`, `DEMO_ISSUER`,
 * `DEMO_APP_URL`, `DEMO_CLIENT_ID`, and the client secret from `DEMO_CLIENT_SECRET_FILE` (the same
 * compose secret Portcullis reads, so the two cannot disagree) or `DEMO_CLIENT_SECRET`.
 */
export function readDemoServerSettings(env: NodeJS.ProcessEnv): DemoServerSettings {
  const port = (name: string, fallback: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    if (!/^\d+$/.test(v) || Number(v) > 65535) throw new Error(`${name}=${v} is not a port number`);
    return Number(v);
  };
  const secretFile = env.DEMO_CLIENT_SECRET_FILE;
  const clientSecret = secretFile ? readFileSync(secretFile, 'utf8').replace(/\r?\n$/, '') : env.DEMO_CLIENT_SECRET;
  if (!clientSecret) throw new Error('set DEMO_CLIENT_SECRET_FILE (or DEMO_CLIENT_SECRET) to the client secret Portcullis uses');
  return {
    bindHost: env.DEMO_BIND_HOST || '0.0.0.0',
    idpPort: port('DEMO_IDP_PORT', 9100),
    upstreamPort: port('DEMO_UPSTREAM_PORT', 9200),
    issuer: (env.DEMO_ISSUER || 'http://idp.localhost:9100').replace(/\/$/, ''),
    appUrl: (env.DEMO_APP_URL || 'http://app.localhost:9000').replace(/\/$/, ''),
    clientId: env.DEMO_CLIENT_ID || 'portcullis-demo',
    clientSecret,
  };
}

/** Starts the development IdP (NOT for production) or the demo upstream. */
export async function startDemoServer(role: DemoServerRole, s: DemoServerSettings): Promise<RunningDemoServer> {
  if (role === 'idp') {
    const idp = await startIdp({
      host: s.bindHost,
      port: s.idpPort,
      issuer: s.issuer,
      showUsers: true,
      clients: [
        {
          client_id: s.clientId,
          client_secret: s.clientSecret,
          redirect_uris: [`${s.appUrl}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`],
          post_logout_redirect_uris: [`${s.appUrl}/`],
        },
      ],
    });
    return { url: idp.issuer, close: () => idp.close() };
  }
  const upstream = await startUpstream({ host: s.bindHost, port: s.upstreamPort, name: 'Demo upstream (compose cluster)' });
  return { url: upstream.url, close: () => upstream.close() };
}

/** Runs one demo server until SIGTERM/SIGINT; exit 2 for a bad argument or setting, 1 if it cannot start. */
async function main(argv: string[]): Promise<number> {
  const role = argv[0];
  if (role !== 'idp' && role !== 'upstream') {
    process.stderr.write('usage: node --import tsx infra/compose/demo-servers.ts idp|upstream\n');
    return 2;
  }
  let settings: DemoServerSettings;
  try {
    settings = readDemoServerSettings(process.env);
  } catch (err) {
    process.stderr.write(`demo-servers: ${(err as Error).message}\n`);
    return 2;
  }
  const server = await startDemoServer(role, settings);
  const users = role === 'idp' ? ` (users: ${DEMO_USERS.map((u) => `${u.username}/${u.password}`).join(', ')})` : '';
  process.stdout.write(`demo ${role} listening on ${settings.bindHost}:${role === 'idp' ? settings.idpPort : settings.upstreamPort}, ${server.url}${users}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await server.close();
  return 0;
}

// Run only as a script, so tests can import the functions above without starting anything.
if (process.argv[1] && realpathSync(process.argv[1]) === import.meta.filename) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`demo-servers: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
