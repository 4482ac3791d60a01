// Public entry of @portcullis/demo: the demo's config, for tests that check the demo works as written.
export { DEMO_CLIENT, demoAppUrl, demoConfig, demoPorts, type DemoPorts } from './demo-config.ts';
