// The upstream of the proxy scenarios: node:http answering a small body, or 64 KiB on paths starting with /64k.
import { createServer } from 'node:http';

const SMALL = Buffer.from('hello world');
const LARGE = Buffer.alloc(64 * 1024, 'x');

const server = createServer((req, res) => {
  req.resume();
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
