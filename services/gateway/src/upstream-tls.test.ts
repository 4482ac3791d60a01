// Upstream TLS policy (internal_host_ssl_validation) and Basic credentials built from user attributes.
import { startUpstream } from '@portcullis/testkit';
import t from 'tap';
import { providerYaml, startTestGateway, testConfig } from './test-support.ts';

t.test('upstream TLS and basic auth', async (t) => {
  const tlsUpstream = await startUpstream({ tls: true, name: 'self-signed' });
  t.teardown(() => tlsUpstream.close());
  const config = testConfig(`
outpost: { listen: { http: "127.0.0.1:9000", metrics: null } }
providers:
${providerYaml({ name: 'lax', mode: 'proxy', external_host: 'https://lax.company', internal_host: tlsUpstream.url, internal_host_ssl_validation: 'false', basic_auth_enabled: 'true', basic_auth_user_attribute: 'svc_user', basic_auth_password_attribute: 'svc_password' })}
${providerYaml({ name: 'strict', mode: 'proxy', external_host: 'https://strict.company', internal_host: tlsUpstream.url, client_id: 'client-s' })}
`);
  const gw = await startTestGateway(config);
  t.teardown(() => gw.close());
  const claims = { sub: 'dave', preferred_username: 'dave', email: 'dave@example.com', ak_proxy: { user_attributes: { svc_user: 'svc-dave', svc_password: 'p@ss:word' } } };

  t.test('internal_host_ssl_validation: false accepts a self-signed upstream', async (t) => {
    const cookie = await gw.login('lax', claims);
    const r = await gw.gateway.http.inject({ url: '/', headers: { host: 'lax.company', cookie } });
    t.equal(r.statusCode, 200);
    t.equal((JSON.parse(r.body) as { name: string }).name, 'self-signed');
  });

  t.test('with validation on (the default), a self-signed upstream is a 502', async (t) => {
    const cookie = await gw.login('strict', claims);
    const r = await gw.gateway.http.inject({ url: '/', headers: { host: 'strict.company', cookie } });
    t.equal(r.statusCode, 502);
  });

  t.test('basic_auth_enabled sends Authorization: Basic from the user attributes', async (t) => {
    const cookie = await gw.login('lax', claims);
    const r = await gw.gateway.http.inject({ url: '/', headers: { host: 'lax.company', cookie, authorization: 'Bearer client-value' } });
    const h = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
    t.equal(h.authorization, `Basic ${Buffer.from('svc-dave:p@ss:word').toString('base64')}`);
  });
});
