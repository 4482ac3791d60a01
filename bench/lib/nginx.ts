// nginx as the reverse-proxy baseline: proxy_pass to the bench upstream over keep-alive connections.
import { type FrontProxy, startNginx } from '../../test/front-proxies/servers.ts';
import { getFreePort } from '@portcullis/testkit';

/** Path prefix of the location with 64 KiB proxy buffers (the rest of the path goes upstream as it is). */
export const LARGE_BUFFERS_PREFIX = '/large-buffers';

/** What both locations send upstream: keep-alive HTTP/1.1, the client's Host, X-Forwarded-For; buffered. */
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
 */
export async function startBenchNginx(upstreamPort: number): Promise<FrontProxy> {
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
    }
`,
  });
}
