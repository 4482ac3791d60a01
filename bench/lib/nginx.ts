// nginx as the reverse-proxy baseline: proxy_pass to the bench upstream over keep-alive connections.
import { type FrontProxy, startNginx } from '../../test/front-proxies/servers.ts';
import { getFreePort } from '@portcullis/testkit';

/** Path prefix of the location with 64 KiB proxy buffers (the rest of the path goes upstream as it is). */
export const LARGE_BUFFERS_PREFIX = '/large-buffers';

/** Path prefix of the location that sends upstream the headers the gateway adds for a session (when given). */
export const IDENTITY_PREFIX = '/with-identity';

/** The headers the gateway sets per request, as nginx sets them (the rest of a session's are fixed values). */
const PER_REQUEST = new Map([
  ['x-forwarded-for', '$remote_addr'],
  ['x-real-ip', '$remote_addr'],
  ['x-forwarded-host', '$http_host'],
  ['x-forwarded-proto', '$scheme'],
]);

/**
 * `proxy_set_header` lines for `headers`; a value nginx would read otherwise than as written is refused.
 * nginx leaves out a header set to "" (the gateway sends it empty): the only difference in what the upstream reads.
 */
function identityDirectives(headers: ReadonlyArray<readonly [string, string]>): string {
  return headers
    .filter(([name]) => name.toLowerCase() !== 'x-forwarded-for') // set for every location already
    .map(([name, value]) => {
      const variable = PER_REQUEST.get(name.toLowerCase());
      if (variable === undefined && /["\\$;{}\x00-\x1f]/.test(value)) throw new Error(`bench nginx: the header ${name} has a value nginx's config cannot carry as is: ${JSON.stringify(value)}`);
      return `            proxy_set_header ${name} "${variable ?? value}";\n`;
    })
    .join('');
}

/** What every location sends upstream: keep-alive HTTP/1.1, the client's Host, X-Forwarded-For; buffered. */
const PROXY_TO_UPSTREAM = `            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffering on;
`;

/**
 * Starts nginx (one worker, like the single gateway process) proxying every path to 127.0.0.1:`upstreamPort`.
 * Neither side's connections are recycled (nginx closes them after 1 000 requests by default; the
 * gateway and the load generator keep theirs), so nginx pays no reconnects the gateway does not.
 * With `identity` (the headers the gateway sent upstream for a session), {@link IDENTITY_PREFIX} sends
 * them too: what the upstream reads is then the same, as behind an nginx doing auth_request.
 */
export async function startBenchNginx(upstreamPort: number, identity?: ReadonlyArray<readonly [string, string]>): Promise<FrontProxy> {
  const port = await getFreePort();
  return startNginx({
    port,
    serverBlocks: `
    upstream bench_upstream {
        server 127.0.0.1:${upstreamPort};
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${port};
        keepalive_requests 1000000;
        location / {
            proxy_pass http://bench_upstream;
${PROXY_TO_UPSTREAM}        }
        # The same with buffers a 64 KiB answer fits in (nginx's default is 8 x 4 KiB): /large-buffers/64k
        # reaches the upstream as /64k. Shown beside the default in scenario 2, not judged.
        location ${LARGE_BUFFERS_PREFIX}/ {
            proxy_pass http://bench_upstream/;
${PROXY_TO_UPSTREAM}            proxy_buffer_size 16k;
            proxy_buffers 4 64k;
            proxy_busy_buffers_size 128k;
        }
${
  identity
    ? `        # The same, also sending the headers the gateway adds for the bench session: /with-identity/small reaches the upstream as /small.
        location ${IDENTITY_PREFIX}/ {
            proxy_pass http://bench_upstream/;
${PROXY_TO_UPSTREAM}${identityDirectives(identity)}        }
`
    : ''
}    }
`,
  });
}
