// Measures the gateway cache's heap per entry: fills a CachedSessionReader through misses and compares heap after global.gc().
import { createMemoryBus } from '@portcullis/bus';
import { CachedSessionReader } from '@portcullis/gateway';
import type { SessionReader, SessionRecord } from '@portcullis/store';
import { sessionData } from '../lib/sessions.ts';

const entries = Number(process.argv[2] ?? 100_000);
const issuer = process.argv[3] ?? 'http://127.0.0.1:1';
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

// Records are built on demand and not kept here, so after the fill only the cache holds them.
const reader: SessionReader = {
  appliedSeq: async () => 0,
  waitForApplied: async () => true,
  listLiveSessions: async () => [],
  getLiveSession: async (sessionId): Promise<SessionRecord> => ({
    ...sessionData({ provider: 'app', issuer, sub: `user-${sessionId}`, sessionId }),
    seq: 1,
  }),
};
const bus = createMemoryBus();
const cache = new CachedSessionReader({ log: bus.log, store: reader, maxEntries: entries, revocationMemoryMs: 86_400_000 });
await cache.start();
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const before = heap();
for (let i = 0; i < entries; i++) await cache.getLiveSession(`s${i}`);
const after = heap();
if (cache.size !== entries) throw new Error(`cache holds ${cache.size} entries, expected ${entries}`);
process.stdout.write(`READY ${JSON.stringify({ entries, heapDeltaBytes: after - before, bytesPerEntry: (after - before) / entries })}\n`);
await cache.stop();
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1000);
