// Runs the bus contract against the in-process (embedded) adapter.
import t from 'tap';
import { runBusContract } from './bus-contract.ts';
import { createMemoryBus } from './memory-bus.ts';

t.test('memory bus meets the bus contract', async (t) => {
  runBusContract(t, async () => createMemoryBus());
});
