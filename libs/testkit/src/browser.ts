// A scripted browser for end-to-end tests: undici requests to loopback, a cookie jar, redirect following and form posts.
import { isIP } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import { type CookieJar, createCookieJar } from './cookie-jar.ts';
import { TestkitError, TestkitErrorCode } from './errors.ts';
import { isAutoSubmitPage, parseFirstForm } from './html-form.ts';

/** Options of {@link createBrowser}. */
export interface BrowserOptions {
  /**
   * Hostname → port on 127.0.0.1, like curl's --resolve: requests to that hostname connect to this
   * port whatever port the URL names (the Host header keeps the URL's). Every other hostname also
   * connects to 127.0.0.1, on the URL's port, so `*.localhost` works whatever the OS resolver says.
   */
  resolve?: Record<string, number>;
  /** Share a cookie jar with other browsers (e.g. one browser per gateway replica, one user). */
  jar?: CookieJar;
  /** Headers sent with every request (a request's own headers win). Default: a user-agent only. */
  headers?: Record<string, string>;
}

/** A request as the browser sends it. */
export interface BrowserRequestInit {
  /** Default GET. */
  method?: string;
  headers?: Record<string, string>;
  /** A URLSearchParams body is sent as application/x-www-form-urlencoded. */
  body?: string | URLSearchParams;
}

/** A response as the browser received it; the body is read in full. */
export interface BrowserResponse {
  status: number;
  /** Lower-case names; repeated headers (set-cookie) are arrays. */
  headers: Record<string, string | string[]>;
  /** The Location header resolved against the request URL. */
  location?: string;
  body: string;
  /** The URL that was requested. */
  url: string;
}

/** One hop of {@link Browser.follow}. */
export interface ChainStep {
  url: string;
  status: number;
}

/** Result of following redirects. */
export interface FollowResult {
  final: BrowserResponse;
  chain: ChainStep[];
}

/** Options of {@link Browser.follow}. */
export interface FollowOptions {
  /** Most requests made, the first included. Default 20. */
  max?: number;
  /** Stop before requesting a URL for which this returns true; `final` is then the redirect that pointed there. */
  stopAt?: (url: string) => boolean;
  /** Submit pages that a real browser would auto-submit by script (form_post, IdP logout). Default true. */
  autoSubmit?: boolean;
}

/** A cookie visible to a URL. */
export interface BrowserCookie {
  name: string;
  value: string;
  domain: string;
  path: string;
}

/** A scripted browser: one cookie jar, no JavaScript except the auto-submit pattern, never follows redirects by itself. */
export interface Browser {
  request(url: string, init?: BrowserRequestInit): Promise<BrowserResponse>;
  /** Requests `url`, then follows 30x (GET after 301/302/303, same method and body after 307/308). */
  follow(url: string, init?: BrowserRequestInit, opts?: FollowOptions): Promise<FollowResult>;
  /** Follows on from a response already received (e.g. after a form post); the chain starts with it. */
  followFrom(response: BrowserResponse, opts?: FollowOptions): Promise<FollowResult>;
  /** Cookies a request to `url` would carry. */
  cookies(url: string): BrowserCookie[];
  /** Stores a Set-Cookie header as if `url` had sent it; false when the jar rejects it. */
  setCookie(url: string, header: string): boolean;
  clearCookies(): void;
  /**
   * Fills the first form of `formPage` (a text/email input named like user/login/email gets the
   * username, the password input the password, hidden inputs are kept) and submits it. Does not follow.
   */
  submitLoginForm(formPage: BrowserResponse, username: string, password: string): Promise<BrowserResponse>;
  /** Submits the first form of `page` with its own values, overridden by `values`. Does not follow. */
  submitForm(page: BrowserResponse, values?: Record<string, string>): Promise<BrowserResponse>;
  /** Closes the browser's connections. */
  close(): Promise<void>;
}

const redirectStatuses = new Set([301, 302, 303, 307, 308]);

/** Creates a scripted browser whose every connection goes to 127.0.0.1. */
export function createBrowser(opts: BrowserOptions = {}): Browser {
  const jar = opts.jar ?? createCookieJar();
  const resolve = new Map(Object.entries(opts.resolve ?? {}).map(([host, port]) => [host.toLowerCase(), port]));
  // Test servers use self-signed certificates: the browser accepts them, it only ever talks to loopback.
  const connect = buildConnector({ rejectUnauthorized: false });
  const agent = new Agent({
    connect: (options, callback) => {
      const hostname = options.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
      const port = resolve.get(hostname) ?? options.port;
      connect(
        {
          ...options,
          hostname: '127.0.0.1',
          port: String(port),
          // SNI names the site the URL names; SNI never carries an IP address.
          ...(isIP(hostname) === 0 ? { servername: hostname } : {}),
        },
        callback,
      );
    },
  });
  const defaultHeaders = { 'user-agent': 'portcullis-testkit-browser', ...opts.headers };

  const send = async (url: string, init: BrowserRequestInit = {}): Promise<BrowserResponse> => {
    const headers: Record<string, string> = { ...defaultHeaders };
    for (const [name, value] of Object.entries(init.headers ?? {})) headers[name.toLowerCase()] = value;
    const jarCookies = jar.cookieHeaderFor(url);
    if (jarCookies) headers['cookie'] = headers['cookie'] ? `${headers['cookie']}; ${jarCookies}` : jarCookies;
    let body: string | undefined;
    if (init.body instanceof URLSearchParams) {
      body = init.body.toString();
      headers['content-type'] ??= 'application/x-www-form-urlencoded';
    } else {
      body = init.body;
    }

    const method = (init.method ?? 'GET').toUpperCase() as 'GET';
    const res = await request(url, { method, headers, body, dispatcher: agent }).catch((err: unknown) => {
      // As browsers do (RFC 9112 §9.3.1): a GET or HEAD that met a kept-alive connection the server had
      // just closed (a restart, an idle timeout) is sent once more, on a new connection.
      if ((method === 'GET' || method === 'HEAD') && (err as { code?: string }).code === 'UND_ERR_SOCKET') {
        return request(url, { method, headers, body, dispatcher: agent });
      }
      throw err;
    });
    const text = await res.body.text();
    const responseHeaders: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(res.headers)) {
      if (value !== undefined) responseHeaders[name] = value;
    }
    const setCookie = responseHeaders['set-cookie'];
    for (const header of Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []) {
      jar.setCookie(url, header);
    }
    const location = responseHeaders['location'];
    const response: BrowserResponse = { status: res.statusCode, headers: responseHeaders, body: text, url };
    if (typeof location === 'string') response.location = new URL(location, url).href;
    return response;
  };

  const buildFormRequest = (page: BrowserResponse, values: Record<string, string> = {}) => {
    const form = parseFirstForm(page.body, page.url);
    if (!form) throw new TestkitError(TestkitErrorCode.FormNotFound, `no <form> in the page from ${page.url} (status ${page.status})`);
    const params = new URLSearchParams();
    for (const field of form.fields) {
      if (field.type === 'submit' || field.type === 'button') continue;
      if (!(field.name in values)) params.append(field.name, field.value);
    }
    for (const [name, value] of Object.entries(values)) params.append(name, value);
    if (form.method === 'GET') {
      const target = new URL(form.action);
      target.search = params.toString();
      return { url: target.href, init: {} as BrowserRequestInit };
    }
    // Browsers send Origin with every form POST; servers that check CSRF by Origin expect it.
    const init: BrowserRequestInit = { method: 'POST', body: params, headers: { origin: new URL(page.url).origin } };
    return { url: form.action, init };
  };

  const submitForm = (page: BrowserResponse, values?: Record<string, string>): Promise<BrowserResponse> => {
    const { url, init } = buildFormRequest(page, values);
    return send(url, init);
  };

  const followFrom = async (
    first: BrowserResponse,
    followOpts: FollowOptions,
    made: number,
    firstInit: BrowserRequestInit = {},
  ): Promise<FollowResult> => {
    const max = followOpts.max ?? 20;
    const chain: ChainStep[] = [{ url: first.url, status: first.status }];
    let current = first;
    let currentInit = firstInit;
    let requests = made;
    for (;;) {
      let next: { url: string; init: BrowserRequestInit } | undefined;
      if (redirectStatuses.has(current.status) && current.location) {
        // 307/308 repeat the request as it was; 301/302/303 turn it into a GET without a body, as browsers do.
        const keep = current.status === 307 || current.status === 308;
        next = { url: current.location, init: keep ? currentInit : {} };
      } else if (followOpts.autoSubmit !== false && current.status === 200 && isAutoSubmitPage(current.body)) {
        next = buildFormRequest(current);
      }
      if (!next || followOpts.stopAt?.(next.url)) return { final: current, chain };
      if (requests >= max) {
        throw new TestkitError(
          TestkitErrorCode.TooManyRedirects,
          `more than ${max} requests following ${first.url}: ${chain.map((s) => `${s.status} ${s.url}`).join(' → ')}`,
        );
      }
      current = await send(next.url, next.init);
      currentInit = next.init;
      requests += 1;
      chain.push({ url: current.url, status: current.status });
    }
  };

  return {
    request: send,
    async follow(url, init, followOpts = {}) {
      return followFrom(await send(url, init), followOpts, 1, init);
    },
    followFrom: (response, followOpts = {}) => followFrom(response, followOpts, 0),
    cookies: (url) => jar.cookiesFor(url).map(({ name, value, domain, path }) => ({ name, value, domain, path })),
    setCookie: (url, header) => jar.setCookie(url, header),
    clearCookies: () => jar.clear(),
    submitForm,
    async submitLoginForm(formPage, username, password) {
      const form = parseFirstForm(formPage.body, formPage.url);
      if (!form) throw new TestkitError(TestkitErrorCode.FormNotFound, `no login form in the page from ${formPage.url} (status ${formPage.status})`);
      const values: Record<string, string> = {};
      for (const field of form.fields) {
        if (field.type === 'password') values[field.name] = password;
        else if (['text', 'email'].includes(field.type) && /user|login|email/i.test(field.name)) values[field.name] = username;
      }
      return submitForm(formPage, values);
    },
    close: () => agent.close(),
  };
}
