// Identity header names, the spoof-header stripper and the claims → identity headers mapping.

/** The 12 identity headers authentik's outpost always sends, in its order and spelling. */
export const IDENTITY_HEADERS = [
  'X-authentik-username',
  'X-authentik-groups',
  'X-authentik-entitlements',
  'X-authentik-email',
  'X-authentik-name',
  'X-authentik-uid',
  'X-authentik-jwt',
  'X-authentik-meta-jwks',
  'X-authentik-meta-outpost',
  'X-authentik-meta-provider',
  'X-authentik-meta-app',
  'X-authentik-meta-version',
] as const;

/**
 * Client-supplied identity headers of other auth proxies that are dropped by default, so an
 * upstream that trusts any of them cannot be fooled. A trailing `*` means "any name with this prefix".
 */
export const DEFAULT_STRIP_HEADERS: readonly string[] = [
  'X-Forwarded-User',
  'X-Forwarded-Email',
  'X-Forwarded-Groups',
  'X-Forwarded-Preferred-Username',
  'X-Forwarded-Access-Token',
  'Remote-User',
  'Remote-Groups',
  'Remote-Email',
  'Remote-Name',
  'X-Auth-Request-*',
];

/** The prefix every identity header shares once folded; any client header with it is a spoof attempt. */
const IDENTITY_PREFIX = 'x-authentik-';

/** Characters some servers (nginx, CGI, WSGI) treat as `-` in header names. */
const SEPARATOR_VARIANTS = /[_.]/g;

/**
 * Folds a header name so that `X_Authentik.Uid` and `x-authentik-uid` compare equal: upstream
 * frameworks often map `_` (and some `.`) to `-`, so a spoof must not slip through by spelling.
 */
export function foldHeaderName(name: string): string {
  const lower = name.toLowerCase();
  return lower.includes('_') || lower.includes('.') ? lower.replace(SEPARATOR_VARIANTS, '-') : lower;
}

/**
 * Builds the predicate (HOT) that says whether an incoming request header must be dropped before
 * proxying: every `x-authentik-*` spelling variant, plus the configured names (exact, or prefix when
 * ending in `*`), all compared after {@link foldHeaderName}. `Authorization` is never dropped here.
 * Entries that fold to an empty name (such as a lone `*`) are ignored: they would drop every header.
 */
export function buildHeaderStripper(stripHeaders: readonly string[]): (name: string) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [IDENTITY_PREFIX];
  for (const entry of stripHeaders) {
    const trimmed = entry.trim();
    if (trimmed.endsWith('*')) {
      const prefix = foldHeaderName(trimmed.slice(0, -1));
      if (prefix !== '') prefixes.push(prefix);
    } else {
      const folded = foldHeaderName(trimmed);
      if (folded !== '') exact.add(folded);
    }
  }
  const prefixCount = prefixes.length;
  return function shouldStripHeader(name: string): boolean {
    const folded = foldHeaderName(name);
    if (exact.has(folded)) return true;
    for (let i = 0; i < prefixCount; i++) {
      if (folded.startsWith(prefixes[i]!)) return true;
    }
    return false;
  };
}

/** Claims of a session as stored at login (ID/access token claims plus the `ak_proxy` scope). */
export interface IdentityClaims {
  sub: string;
  preferred_username?: string;
  email?: string;
  name?: string;
  groups?: unknown;
  entitlements?: unknown;
  ak_proxy?: {
    user_attributes?: Record<string, unknown>;
    backend_override?: string;
    host_header?: string;
    is_superuser?: boolean;
  };
  [k: string]: unknown;
}

/** Per-provider facts that appear in the `X-authentik-meta-*` headers and drive basic auth. */
export interface IdentityContext {
  jwksUri: string;
  outpostName: string;
  providerName: string;
  appSlug: string;
  /** Sent as-is in `X-authentik-meta-version`, e.g. `goauthentik.io/outpost/2026.5.0`. */
  version: string;
  basicAuth?: { enabled: boolean; userAttribute: string; passwordAttribute: string };
}

/** Result of {@link buildIdentityHeaders}: headers in order, and what had to be left out or cleaned. */
export interface IdentityHeadersResult {
  headers: Array<[string, string]>;
  /** Human-readable notes for the service to log; never contain header values. */
  warnings: string[];
}

/** RFC 9110 `token`: the only legal header-name characters. */
const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** C0 controls except tab, plus DEL: Node refuses them and CR/LF/NUL would split or truncate headers. */
const UNSAFE_HEADER_CHARS = /[\x00-\x08\x0a-\x1f\x7f]/g;
const HAS_UNSAFE_HEADER_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Characters that would corrupt a `|`-joined list or a header line. */
const LIST_BREAKING_CHARS = /[|\r\n]/;

/**
 * Names that frame or route the message: letting a user attribute set them would allow request
 * smuggling or a broken auth response, so `additionalHeaders` may never touch them.
 */
const FORBIDDEN_EXTRA_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
]);

/** Removes CR, LF, NUL, DEL and the other C0 control characters except tab from a header value. */
export function sanitizeHeaderValue(v: string): string {
  return HAS_UNSAFE_HEADER_CHAR.test(v) ? v.replace(UNSAFE_HEADER_CHARS, '') : v;
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Node writes header strings as latin1 and rejects characters above U+00FF, while authentik sends
 * UTF-8 bytes. Call this on a value just before `setHeader` so that a display name such as `李雷`
 * reaches the upstream as UTF-8 instead of making Node throw.
 */
export function encodeHeaderValueForWire(v: string): string {
  return NON_ASCII.test(v) ? Buffer.from(v, 'utf8').toString('latin1') : v;
}

function stringClaim(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function joinList(value: unknown, header: string, warnings: string[]): string {
  if (value === undefined || value === null) return '';
  if (!Array.isArray(value)) {
    warnings.push(`${header}: claim is not a list; header left empty`);
    return '';
  }
  const kept: string[] = [];
  let skippedUnsafe = 0;
  let skippedNonString = 0;
  for (const entry of value) {
    if (typeof entry !== 'string') skippedNonString++;
    else if (LIST_BREAKING_CHARS.test(entry)) skippedUnsafe++;
    else kept.push(entry);
  }
  if (skippedUnsafe > 0) {
    warnings.push(`${header}: left out ${skippedUnsafe} entr${skippedUnsafe === 1 ? 'y' : 'ies'} containing '|', CR or LF`);
  }
  if (skippedNonString > 0) {
    warnings.push(`${header}: left out ${skippedNonString} non-string entr${skippedNonString === 1 ? 'y' : 'ies'}`);
  }
  return kept.join('|');
}

function stringifyExtraValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sets a header, replacing an earlier one with the same name (case-insensitive) in place. */
function upsertHeader(headers: Array<[string, string]>, name: string, value: string): void {
  const lower = name.toLowerCase();
  for (const entry of headers) {
    if (entry[0].toLowerCase() === lower) {
      entry[1] = value;
      return;
    }
  }
  headers.push([name, value]);
}

/**
 * Maps session claims to the headers sent upstream (proxy mode) or to the front proxy (forward
 * modes): the 12 {@link IDENTITY_HEADERS} always (empty when unknown), then the user's
 * `ak_proxy.user_attributes.additionalHeaders` (which may override earlier ones, as in authentik;
 * framing headers such as Host or Content-Length are refused), then `Authorization: Basic` when
 * `ctx.basicAuth.enabled` and a password attribute is present. An override keeps the position of
 * the header it replaces. Every value is cleaned with {@link sanitizeHeaderValue}.
 */
export function buildIdentityHeaders(
  claims: IdentityClaims,
  rawToken: string,
  ctx: IdentityContext,
): IdentityHeadersResult {
  const warnings: string[] = [];
  const values = [
    stringClaim(claims.preferred_username),
    joinList(claims.groups, 'X-authentik-groups', warnings),
    joinList(claims.entitlements, 'X-authentik-entitlements', warnings),
    stringClaim(claims.email),
    stringClaim(claims.name),
    stringClaim(claims.sub),
    rawToken,
    ctx.jwksUri,
    ctx.outpostName,
    ctx.providerName,
    ctx.appSlug,
    ctx.version,
  ];
  const headers: Array<[string, string]> = IDENTITY_HEADERS.map((name, i) => [name, values[i] ?? '']);

  const attributes = isPlainObject(claims.ak_proxy?.user_attributes) ? claims.ak_proxy.user_attributes : undefined;
  const extras = attributes?.['additionalHeaders'];
  if (isPlainObject(extras)) {
    for (const [name, raw] of Object.entries(extras)) {
      if (!HTTP_TOKEN.test(name)) {
        warnings.push(`additionalHeaders: skipped a header whose name is not a valid HTTP token`);
        continue;
      }
      if (FORBIDDEN_EXTRA_HEADERS.has(name.toLowerCase())) {
        warnings.push(`additionalHeaders: skipped ${name}, which may not be set from user attributes`);
        continue;
      }
      const value = stringifyExtraValue(raw);
      if (value === undefined) {
        warnings.push(`additionalHeaders: skipped ${name}, whose value is not a string, finite number or boolean`);
        continue;
      }
      upsertHeader(headers, name, value);
    }
  } else if (extras !== undefined && extras !== null) {
    warnings.push('additionalHeaders: attribute is not an object; ignored');
  }

  if (ctx.basicAuth?.enabled === true && attributes !== undefined) {
    const password = attributes[ctx.basicAuth.passwordAttribute];
    if (typeof password === 'string' && password !== '') {
      const userAttribute = attributes[ctx.basicAuth.userAttribute];
      const user = typeof userAttribute === 'string' ? userAttribute : stringClaim(claims.email);
      upsertHeader(headers, 'Authorization', 'Basic ' + Buffer.from(`${user}:${password}`, 'utf8').toString('base64'));
    }
  }

  for (const entry of headers) {
    const clean = sanitizeHeaderValue(entry[1]);
    if (clean !== entry[1]) {
      entry[1] = clean;
      warnings.push(`${entry[0]}: removed control characters from the value`);
    }
  }
  return { headers, warnings };
}
