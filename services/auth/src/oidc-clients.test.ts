// Discovery cache: back-off doubles from 1 s to a 30 s cap, and a failure inside the back-off costs no connection.
import { createServer } from 'node:net';
import t from 'tap';
import { AuthError } from './errors.ts';
import { isLoopbackUrl, OidcClients } from './oidc-clients.ts';

t.test('failed discovery is retried only after a back-off of 1 s doubling up to 30 s', async (t) => {
  let connections = 0;
  const hangUp = createServer((s) => {
    connections += 1;
    s.destroy();
  });
  await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
  t.teardown(() => hangUp.close());
  const { port } = hangUp.address() as { port: number };
  const issuer = `http://127.0.0.1:${port}`;
  let now = 0;
  const clients = new OidcClients([{ issuer, clientId: 'c', clientSecret: 's', redirectUris: [] }], {
    timeoutMs: 1000,
    now: () => now,
  });
  const attempt = async () => {
    const err = await clients.get(issuer, 'c', 's').catch((e: unknown) => e);
    t.ok(err instanceof AuthError && err.statusCode === 502, 'fails with a 502 AuthError');
  };
  const expectedDelays = [1000, 2000, 4000, 8000, 16000, 30000, 30000];
  await attempt();
  for (const delay of expectedDelays) {
    const before = connections;
    now += delay - 1;
    await attempt();
    t.equal(connections, before, `no connection ${delay - 1} ms after the failure`);
    now += 1;
    await attempt();
    t.equal(connections, before + 1, `a new attempt ${delay} ms after the failure`);
  }
  t.equal(clients.peek(issuer, 'c', 's'), undefined);
});

t.test('loopback detection covers localhost names, 127/8 and ::1 only', async (t) => {
  t.ok(isLoopbackUrl('http://localhost:9000'));
  t.ok(isLoopbackUrl('http://idp.localhost'));
  t.ok(isLoopbackUrl('http://127.1.2.3'));
  t.ok(isLoopbackUrl('http://[::1]:8080'));
  t.notOk(isLoopbackUrl('http://10.0.0.1'));
  t.notOk(isLoopbackUrl('http://127.0.0.1.example.com'));
});
