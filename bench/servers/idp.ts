// The development IdP (testkit's oidc-provider) in its own process, so the login scenario's load generator does not share its event loop.
import { type IdpClient, startIdp } from '@portcullis/testkit';

// argv[2]: JSON IdpClient[]
const clients = JSON.parse(process.argv[2] ?? '[]') as IdpClient[];
const idp = await startIdp({ clients });
process.stdout.write(`READY ${JSON.stringify({ issuer: idp.issuer, port: idp.port })}\n`);
process.on('SIGTERM', () => {
  idp.close().then(() => process.exit(0));
});
