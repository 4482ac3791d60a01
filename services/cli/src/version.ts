// The Portcullis version, read once from this package's manifest.
import { createRequire } from 'node:module';

/** Semver of this build, e.g. `0.1.0`. */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
/** Sent as X-authentik-meta-version. */
export const META_VERSION = `portcullis/${VERSION}`;
