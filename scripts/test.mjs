#!/usr/bin/env node
// `npm test`: installs missing test servers, typechecks, lints, runs every tap test, and prints
// the plain summary line "N passed, N failed" from tap's own counts as the last line.
import { spawnSync, spawn } from 'node:child_process';

const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  return r.status ?? 1;
};

// 1. Real servers the tests start on free ports (nats-server, redis-server, nginx, caddy).
if (run('bash', ['scripts/install-servers.sh']) !== 0) process.exit(1);

// 2. tap compiles its plugin set once; do it before the first run so that run uses our loader.
if (run('npx', ['--no-install', 'tap', 'build'], { stdio: ['ignore', 'ignore', 'inherit'] }) !== 0) process.exit(1);

// 3. Static checks.
console.log('# typecheck (tsc, strict)');
if (run('npx', ['--no-install', 'tsc', '-p', '.']) !== 0) process.exit(1);
console.log('# lint (biome)');
if (run('npx', ['--no-install', 'biome', 'check', '.']) !== 0) process.exit(1);

// 4. Tests. Stream tap's output and keep its final counts line: "# { total: N, pass: N, fail: N }".
const extra = process.argv.slice(2);
const child = spawn('npx', ['--no-install', 'tap', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});
child.on('close', (code) => {
  const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?/.exec(tail);
  const pass = Number(m?.[2] ?? 0);
  const fail = Number(m?.[3] ?? 0) + (m ? 0 : 1);
  const skip = Number(m?.[4] ?? 0);
  console.log(`${pass} passed, ${fail} failed${skip ? `, ${skip} skipped` : ''}`);
  process.exit(code === 0 && fail === 0 ? 0 : 1);
});
