// nginx as the reverse-proxy baseline: proxy_pass to the bench upstream over keep-alive connections.
import { type FrontProxy, startNginx } from '../../test/front-proxies/servers.ts';
import { getFreePort } from '@portcullis/testkit';

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
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffering on;
        }
    }
`,
  });
}
