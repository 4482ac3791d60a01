// The upstream of the proxy scenarios: node:http answering a small body, 64 KiB on paths starting with /64k (chunked, with no length: /chunked-64k and /chunked-small), or the request's headers as JSON on /echo-headers.
import { createServer } from 'node:http';

const SMALL = Buffer.from('hello world');
const LARGE = Buffer.alloc(64 * 1024, 'x');

const server = createServer((req, res) => {
  req.resume();
  if (req.url === '/echo-headers') {
    // What a proxy in front sent: the bench reads the gateway's upstream headers here.
    const json = JSON.stringify(req.headers);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
    return;
  }
  if (req.url?.startsWith('/chunked-')) {
    // No Content-Length: node frames it chunked, as apps streaming their answers do.
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(req.url.startsWith('/chunked-64k') ? LARGE : SMALL);
    res.end();
    return;
  }
  const body = req.url?.startsWith('/64k') ? LARGE : SMALL;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`READY ${JSON.stringify({ port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
