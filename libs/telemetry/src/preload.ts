// Imported by the `portcullis` bin before anything else: starts tracing for the process's role.
import { defaultServiceName } from './preload-name.ts';
import { startTracing } from './tracing-sdk.ts';

/** The started tracing handle (shut down on exit by the CLI). */
export const tracing = await startTracing(defaultServiceName(process.argv.slice(2)), process.env.npm_package_version ?? '0.1.0');
