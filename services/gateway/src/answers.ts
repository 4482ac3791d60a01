// What the gateway decided for one request: respond directly, or proxy to an upstream.
import type { AuthReply } from '@portcullis/events';
import { renderPage } from './pages.ts';
import type { ProviderRuntime } from './provider-runtime.ts';
import type { HeaderBlock } from './upstream-h1.ts';

/** Answer the client directly. */
export interface RespondAnswer {
  kind: 'respond';
  /** Provider host for the request-duration metric (never the raw Host header: unbounded cardinality). */
  metricHost?: string;
  status: number;
  headers: Array<[string, string]>;
  body: string;
  /**
   * `headers` is a list shared by many answers and never changed (a session's forward-auth
   * answer): the writer may keep its wire form with it.
   */
  sharedHeaders?: true;
}

/** Forward the request to `origin` + `path` with `headers` (hop-by-hop already removed). */
export interface ProxyAnswer {
  kind: 'proxy';
  metricHost?: string;
  provider: ProviderRuntime;
  /** `scheme://host:port` of the upstream. */
  origin: string;
  /** Request target sent upstream (path + query). */
  path: string;
  headers: Record<string, string | string[]>;
  /** Headers prepared once and sent after `headers` (a session's identity headers); `headers` holds none of their names. */
  block?: HeaderBlock | undefined;
}

export type Answer = RespondAnswer | ProxyAnswer;

/** The Content-Types answers carry, spelled as they go on the wire (fastify would add the charset to a bare JSON type). */
export const TEXT_TYPE = 'text/plain; charset=utf-8';
export const HTML_TYPE = 'text/html; charset=utf-8';
export const JSON_TYPE = 'application/json; charset=utf-8';

/** A plain-text answer (authentik's wording where it has one). */
export function textAnswer(status: number, body: string, extra: Array<[string, string]> = []): RespondAnswer {
  return { kind: 'respond', status, headers: [['content-type', TEXT_TYPE], ...extra], body };
}

/** An HTML page answer. */
export function pageAnswer(
  status: number,
  title: string,
  message: string,
  extra: Array<[string, string]> = [],
  link?: { href: string; text: string },
): RespondAnswer {
  return { kind: 'respond', status, headers: [['content-type', HTML_TYPE], ...extra], body: renderPage(title, message, link) };
}

/** A redirect with optional cookies. */
export function redirectAnswer(location: string, setCookies: readonly string[] = []): RespondAnswer {
  return {
    kind: 'respond',
    status: 302,
    headers: [['location', location], ...setCookies.map((c): [string, string] => ['set-cookie', c])],
    body: '',
  };
}

/** Turns the auth service's reply into an HTTP answer. */
export function fromAuthReply(reply: AuthReply, extraCookies: readonly string[] = []): RespondAnswer {
  const cookies = [...reply.setCookies, ...extraCookies].map((c): [string, string] => ['set-cookie', c]);
  // Retry-After rides with the cookies: every kind of answer below carries them.
  if (reply.retryAfterSeconds !== undefined) cookies.push(['retry-after', String(reply.retryAfterSeconds)]);
  if (reply.location) {
    return { kind: 'respond', status: reply.status, headers: [['location', reply.location], ...cookies], body: '' };
  }
  if (reply.json) {
    return {
      kind: 'respond',
      status: reply.status,
      headers: [['content-type', JSON_TYPE], ['cache-control', 'no-store'], ...cookies],
      body: JSON.stringify(reply.json),
    };
  }
  const page = reply.page ?? { title: 'Portcullis', message: '' };
  return pageAnswer(reply.status, page.title, page.message, cookies);
}

/** authentik's answer when no provider serves the host: 400 JSON, tab-indented. */
export function noProviderAnswer(host: string): RespondAnswer {
  const body = JSON.stringify(
    { Message: 'no app for hostname', Host: host, Detail: 'Check the external_host of your providers (and X-Forwarded-Host from trusted proxies).' },
    null,
    '\t',
  );
  return { kind: 'respond', status: 400, headers: [['content-type', JSON_TYPE]], body };
}
