#!/usr/bin/env node
// The `portcullis` command: registers the TypeScript loader, starts tracing (when OTEL_* asks for it)
// before any instrumented module loads, then hands over to the CLI entry.
import { register } from 'tsx/esm/api';

register();
await import('@portcullis/telemetry/preload');
await import('../src/main.ts');
