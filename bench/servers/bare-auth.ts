// Baseline of the forward-auth scenarios: a bare node:http server answering 200 with a fixed set of headers.
import { createServer } from 'node:http';

// argv[2]: JSON [[name, value], ...], the very headers Portcullis answered for the benchmark session.
const headers = JSON.parse(process.argv[2] ?? '[]') as Array<[string, string]>;
const flat = headers.flat();

const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, flat);
  res.end();
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`READY ${JSON.stringify({ port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
