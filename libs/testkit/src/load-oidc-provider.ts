// Loads oidc-provider and constructs providers with its console notices routed to an optional log, never to stdout/stderr.
import type { default as Provider } from 'oidc-provider';

type OidcProviderModule = typeof import('oidc-provider');

let loading: Promise<OidcProviderModule> | undefined;

// oidc-provider writes "oidc-provider WARNING/NOTICE: ..." (maybe ANSI-coloured) through console.warn/info.
const noticePattern = /^(?:\x1b\[[\d;]*m)?oidc-provider (?:WARNING|NOTICE)/;

/**
 * Runs `fn` with oidc-provider's console notices sent to `log`; any other console output passes
 * through untouched. Used around the import (the "unsupported runtime" warning on Node 20 is printed
 * at import time) and around `new Provider()` (the memory adapter warning).
 */
export async function routeOidcProviderNotices<T>(log: (msg: string) => void, fn: () => T | Promise<T>): Promise<T> {
  const { warn, info } = console;
  const route =
    (original: (...args: unknown[]) => void) =>
    (...args: unknown[]): void => {
      const first = args[0];
      if (typeof first === 'string' && noticePattern.test(first)) {
        log(first.replace(/\x1b\[[\d;]*m/g, ''));
        return;
      }
      original.apply(console, args);
    };
  console.warn = route(warn);
  console.info = route(info);
  try {
    return await fn();
  } finally {
    console.warn = warn;
    console.info = info;
  }
}

/**
 * Imports oidc-provider once per process. The import is dynamic so that its import-time warning can be
 * captured; only the first caller's `log` receives that warning.
 */
export function loadOidcProvider(log: (msg: string) => void): Promise<OidcProviderModule> {
  loading ??= routeOidcProviderNotices(log, () => import('oidc-provider'));
  return loading;
}

/** Constructs a provider with its construction-time notices routed to `log`. */
export function constructProvider(
  mod: OidcProviderModule,
  log: (msg: string) => void,
  ...args: ConstructorParameters<typeof Provider>
): Promise<Provider> {
  return routeOidcProviderNotices(log, () => new mod.Provider(...args));
}
