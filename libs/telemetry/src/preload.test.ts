// The default service.name follows the process's role.
import t from 'tap';
import { defaultServiceName } from './preload-name.ts';

t.test('service.name by role: one role → portcullis-<role>, several or none → portcullis', async (t) => {
  t.equal(defaultServiceName(['run', '--services', 'gateway']), 'portcullis-gateway');
  t.equal(defaultServiceName(['run', '--services=auth']), 'portcullis-auth');
  t.equal(defaultServiceName(['run', '--services', 'session']), 'portcullis-session');
  t.equal(defaultServiceName(['run', '--services', 'gateway,auth']), 'portcullis');
  t.equal(defaultServiceName(['run']), 'portcullis');
  t.equal(defaultServiceName(['sessions', 'list']), 'portcullis');
});
