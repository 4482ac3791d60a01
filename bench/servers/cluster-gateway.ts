// Experiment (not wired into the CLI): `portcullis run ...` as N node:cluster workers sharing its listen ports; prints READY once every worker listens.
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

// argv: the worker count (0: one per core), then the arguments of `portcullis` (e.g. run --config FILE --services gateway).
const BIN = join(import.meta.dirname, '..', '..', 'node_modules', '@portcullis', 'cli', 'bin', 'portcullis.mjs');
const count = Number(process.argv[2]) || availableParallelism();
// The workers register tsx themselves (the bin does), so they get no --import from this process.
cluster.setupPrimary({ exec: BIN, args: process.argv.slice(3), execArgv: [] });
let listening = 0;
// Each worker binds the HTTP listener and the metrics listener.
cluster.on('listening', () => {
  listening += 1;
  if (listening === count * 2) process.stdout.write(`READY ${JSON.stringify({ workers: count, pids: Object.values(cluster.workers ?? {}).map((w) => w?.process.pid) })}\n`);
});
cluster.on('exit', (worker, code, signal) => {
  if (!stopping) process.stderr.write(`worker ${worker.process.pid} exited (${signal ?? code})\n`);
});
for (let i = 0; i < count; i++) cluster.fork();
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
  const workers = Object.values(cluster.workers ?? {});
  let left = workers.length;
  if (left === 0) process.exit(0);
  for (const w of workers) {
    w?.once('exit', () => {
      left -= 1;
      if (left === 0) process.exit(0);
    });
    w?.kill('SIGTERM');
  }
});
