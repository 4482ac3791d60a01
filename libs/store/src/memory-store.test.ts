// Runs the store contract against the in-memory (embedded) adapter.
import t from 'tap';
import { createMemoryStore } from './memory-store.ts';
import { runStoreContract } from './store-contract.ts';

t.test('memory store meets the store contract', async (t) => {
  runStoreContract(t, async () => createMemoryStore());
});
