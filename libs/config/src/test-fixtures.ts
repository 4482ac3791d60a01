// Shared inputs for this package's tests: a minimal valid provider and helpers that load plain objects.
import { type LoadConfigResult, loadConfig } from './load-config.ts';
import type { ConfigProblem } from './config-problem.ts';

/** A provider with only the required keys, valid in proxy mode. */
export function minimalProvider(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'test',
    mode: 'proxy',
    external_host: 'https://app.company',
    internal_host: 'http://127.0.0.1:8080',
    issuer: 'https://idp.company/application/o/test/',
    client_id: 'portcullis-test',
    client_secret: 's3cret',
    cookie_secret: 'abcdefghijklmnopqrstuvwxyz012345',
    ...overrides,
  };
}

/** Loads a config given as a plain object (serialised as JSON, which is YAML 1.2), with an explicit env. */
export function loadObject(config: Record<string, unknown>, env: Record<string, string> = {}): LoadConfigResult {
  return loadConfig({ text: JSON.stringify(config), env });
}

/** The problems of a failed load, or [] when it succeeded. */
export function problemsOf(result: LoadConfigResult): ConfigProblem[] {
  return result.ok ? [] : result.problems;
}
