// Cookie names, the signed session cookie codec, Set-Cookie serialisation, cookie reading and sealed payloads.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { serialize } from 'cookie';
import { PortcullisError } from './errors.ts';

/** authentik's name prefix, kept so existing front-proxy configs and browser cookies line up. */
const COOKIE_PREFIX = 'authentik_proxy_';

function clientIdHash(clientId: string): string {
  return createHash('sha256').update(clientId, 'utf8').digest('hex').slice(0, 8);
}

/** Session cookie name of a provider: `authentik_proxy_` + first 8 hex chars of sha256(client_id). */
export function sessionCookieName(clientId: string): string {
  return COOKIE_PREFIX + clientIdHash(clientId);
}

/** Login-state cookie name of a provider: `authentik_proxy_<8 hex>_state`. */
export function stateCookieName(clientId: string): string {
  return COOKIE_PREFIX + clientIdHash(clientId) + '_state';
}

/** What a session cookie carries: the session id and the stream sequence it was written at. */
export interface SessionCookieValue {
  sessionId: string;
  seq: number;
}

const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Base 10 without sign or leading zero, at most 16 digits (safe-integer check follows). */
const SEQ_DIGITS = /^[1-9][0-9]{0,15}$/;
/** A SHA-256 HMAC in unpadded base64url is always 43 characters. */
const MAC_B64URL = /^[A-Za-z0-9_-]{43}$/;
const MAC_DOMAIN = 'portcullis-session|';

function sessionMac(secret: string, sessionId: string, seq: string): string {
  return createHmac('sha256', secret)
    .update(MAC_DOMAIN + sessionId + '.' + seq)
    .digest('base64url');
}

/**
 * A short public fingerprint of a cookie secret (16 base64url characters of an HMAC, so the secret
 * cannot be recovered). Stored with each session so sessions signed with a secret that is no longer
 * configured can be found and ended.
 */
export function cookieKeyId(secret: string): string {
  return createHmac('sha256', secret).update('portcullis-cookie-key-id').digest('base64url').slice(0, 16);
}

/**
 * Encodes a session cookie value `<sessionId>.<seq>.<base64url HMAC-SHA256>`.
 * @throws PortcullisError `PORTCULLIS_PROTOCOL_INVALID_SESSION_COOKIE` when the secret is empty,
 * the id is not 1–64 base64url characters, or seq is not a safe positive integer (a caller bug).
 */
export function signSessionCookie(secret: string, value: SessionCookieValue): string {
  if (secret === '' || !SESSION_ID.test(value.sessionId) || !Number.isSafeInteger(value.seq) || value.seq < 1) {
    throw new PortcullisError(
      'PORTCULLIS_PROTOCOL_INVALID_SESSION_COOKIE',
      'cannot sign session cookie: need a non-empty secret, a base64url session id of at most 64 characters and a safe positive integer seq',
    );
  }
  const seq = String(value.seq);
  return value.sessionId + '.' + seq + '.' + sessionMac(secret, value.sessionId, seq);
}

/**
 * Checks a session cookie value (HOT). Returns its content when the MAC matches, and null for
 * anything else — wrong secret, tampering, malformed or oversized input — without ever throwing.
 */
export function verifySessionCookie(secret: string, cookie: string): SessionCookieValue | null {
  // 64 (id) + 1 + 16 (seq) + 1 + 43 (mac): anything longer cannot be ours, so do no work on it.
  if (typeof cookie !== 'string' || cookie.length > 125 || secret === '') return null;
  const firstDot = cookie.indexOf('.');
  if (firstDot === -1) return null;
  const secondDot = cookie.indexOf('.', firstDot + 1);
  if (secondDot === -1) return null;
  const sessionId = cookie.slice(0, firstDot);
  const seqText = cookie.slice(firstDot + 1, secondDot);
  const mac = cookie.slice(secondDot + 1);
  // The character classes exclude '.', so an extra dot anywhere fails one of these tests.
  if (!SESSION_ID.test(sessionId) || !SEQ_DIGITS.test(seqText) || !MAC_B64URL.test(mac)) return null;
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq)) return null;
  // Comparing the canonical encodings (not decoded bytes) also rejects non-canonical base64url.
  const expected = sessionMac(secret, sessionId, seqText);
  if (!timingSafeEqual(Buffer.from(mac, 'latin1'), Buffer.from(expected, 'latin1'))) return null;
  return { sessionId, seq };
}

/** Attributes of a cookie set by Portcullis. */
export interface CookieOptions {
  /** Cookie Domain; a leading dot is removed and an empty value means host-only. */
  domain?: string;
  /** Adds `Secure`; true when the external host is https. */
  secure: boolean;
  /** Adds `Max-Age` (fractions are dropped, negatives become 0). */
  maxAgeSeconds?: number;
  /** Cookie Path; defaults to `/`. */
  path?: string;
}

function cookieDomain(domain: string | undefined): string | undefined {
  if (domain === undefined) return undefined;
  const bare = domain.replace(/^\.+/, '');
  return bare === '' ? undefined : bare;
}

function serializeChecked(name: string, value: string, options: Parameters<typeof serialize>[2]): string {
  try {
    return serialize(name, value, options);
  } catch (error) {
    throw new PortcullisError('PORTCULLIS_PROTOCOL_INVALID_COOKIE', `cannot serialise cookie ${JSON.stringify(name)}`, {
      cause: error,
    });
  }
}

/**
 * Builds a `Set-Cookie` value: HttpOnly, SameSite=Lax, Path, Domain (leading dot removed, omitted
 * when empty), Secure when asked, Max-Age when given.
 * @throws PortcullisError `PORTCULLIS_PROTOCOL_INVALID_COOKIE` for an invalid name, value, domain or path.
 */
export function serializeCookie(name: string, value: string, opts: CookieOptions): string {
  return serializeChecked(name, value, {
    httpOnly: true,
    sameSite: 'lax',
    path: opts.path ?? '/',
    domain: cookieDomain(opts.domain),
    secure: opts.secure,
    maxAge: opts.maxAgeSeconds === undefined ? undefined : Math.max(0, Math.floor(opts.maxAgeSeconds)),
  });
}

/** The Expires value authentik (Go) sends when deleting: the epoch plus one second. */
const EPOCH_PLUS_ONE = new Date(1000);

/**
 * Builds a `Set-Cookie` value that deletes a cookie: the same attributes as {@link serializeCookie},
 * an empty value, `Max-Age=0` and `Expires=Thu, 01 Jan 1970 00:00:01 GMT`.
 * @throws PortcullisError `PORTCULLIS_PROTOCOL_INVALID_COOKIE` for an invalid name, domain or path.
 */
export function serializeDeletionCookie(name: string, opts: { domain?: string; secure: boolean; path?: string }): string {
  return serializeChecked(name, '', {
    httpOnly: true,
    sameSite: 'lax',
    path: opts.path ?? '/',
    domain: cookieDomain(opts.domain),
    secure: opts.secure,
    maxAge: 0,
    expires: EPOCH_PLUS_ONE,
  });
}

function isCookieSpace(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/**
 * Reads one cookie from a `Cookie` request header (HOT) without building a map. The first
 * occurrence wins when a name repeats; one pair of surrounding double quotes is removed; the value
 * is not percent-decoded (Portcullis' own values never need it).
 */
export function readCookie(cookieHeader: string | undefined, name: string): string | undefined {
  if (cookieHeader === undefined || name === '' || !cookieHeader.includes(name)) return undefined;
  const length = cookieHeader.length;
  let start = 0;
  while (start < length) {
    while (start < length && isCookieSpace(cookieHeader.charCodeAt(start))) start++;
    const semicolon = cookieHeader.indexOf(';', start);
    const end = semicolon === -1 ? length : semicolon;
    const equals = cookieHeader.indexOf('=', start);
    if (equals !== -1 && equals < end) {
      let nameEnd = equals;
      while (nameEnd > start && isCookieSpace(cookieHeader.charCodeAt(nameEnd - 1))) nameEnd--;
      if (nameEnd - start === name.length && cookieHeader.startsWith(name, start)) {
        let valueStart = equals + 1;
        let valueEnd = end;
        while (valueStart < valueEnd && isCookieSpace(cookieHeader.charCodeAt(valueStart))) valueStart++;
        while (valueEnd > valueStart && isCookieSpace(cookieHeader.charCodeAt(valueEnd - 1))) valueEnd--;
        if (
          valueEnd - valueStart >= 2 &&
          cookieHeader.charCodeAt(valueStart) === 0x22 &&
          cookieHeader.charCodeAt(valueEnd - 1) === 0x22
        ) {
          valueStart++;
          valueEnd--;
        }
        return cookieHeader.slice(valueStart, valueEnd);
      }
    }
    start = end + 1;
  }
  return undefined;
}

const SEAL_IV_BYTES = 12;
const SEAL_TAG_BYTES = 16;
/** Fixed HKDF salt: separates these keys from any other use of the same secret. */
const SEAL_SALT = 'portcullis-seal-v1';
/** Sealed tokens live in cookies (≤ 4 KiB); refusing much larger input bounds the work per request. */
const SEAL_MAX_TOKEN_CHARS = 8192;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Derived keys by purpose, then secret: HKDF took ~2 % of the auth service's CPU per login when run per seal. */
const sealKeys = new Map<string, Map<string, Buffer>>();
/** Secrets per purpose kept: they change only on a reload, so the bound is never reached in practice. */
const SEAL_SECRETS_MAX = 16;

function sealKey(secret: string, purpose: string): Buffer {
  let bySecret = sealKeys.get(purpose);
  if (bySecret === undefined) {
    bySecret = new Map();
    sealKeys.set(purpose, bySecret);
  }
  let key = bySecret.get(secret);
  if (key === undefined) {
    key = Buffer.from(hkdfSync('sha256', secret, SEAL_SALT, purpose, 32));
    if (bySecret.size >= SEAL_SECRETS_MAX) bySecret.clear();
    bySecret.set(secret, key);
  }
  return key;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Encrypts and authenticates a JSON payload (AES-256-GCM, random 12-byte IV, key = HKDF-SHA256 of
 * the secret with info = purpose) and returns it as cookie-safe base64url. The payload gets an
 * `exp` (unix seconds) = now + ttlSeconds, replacing any `exp` it had.
 * @param now current time in unix seconds (for tests); defaults to the clock.
 * @throws PortcullisError `PORTCULLIS_PROTOCOL_INVALID_SEAL` for an empty secret or purpose, a
 * non-positive ttl, or a payload that cannot be serialised as JSON.
 */
export function sealPayload(
  secret: string,
  purpose: string,
  payload: Record<string, unknown>,
  ttlSeconds: number,
  now: number = nowSeconds(),
): string {
  if (secret === '' || purpose === '' || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0 || !Number.isFinite(now)) {
    throw new PortcullisError(
      'PORTCULLIS_PROTOCOL_INVALID_SEAL',
      'cannot seal payload: need a non-empty secret and purpose, and a positive finite ttl',
    );
  }
  let plaintext: string;
  try {
    plaintext = JSON.stringify({ ...payload, exp: now + ttlSeconds });
  } catch (error) {
    throw new PortcullisError('PORTCULLIS_PROTOCOL_INVALID_SEAL', 'cannot seal payload: it is not JSON-serialisable', {
      cause: error,
    });
  }
  const iv = randomBytes(SEAL_IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', sealKey(secret, purpose), iv);
  cipher.setAAD(Buffer.from(purpose, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, ciphertext, cipher.getAuthTag()]).toString('base64url');
}

/**
 * Opens a token made by {@link sealPayload}. Returns the payload (with its `exp`) or null when the
 * token was tampered with, has expired, was sealed for another purpose or secret, or is malformed.
 * Never throws.
 * @param now current time in unix seconds (for tests); defaults to the clock.
 */
export function unsealPayload(
  secret: string,
  purpose: string,
  token: string,
  now: number = nowSeconds(),
): Record<string, unknown> | null {
  if (
    typeof token !== 'string' ||
    secret === '' ||
    token.length > SEAL_MAX_TOKEN_CHARS ||
    !BASE64URL.test(token)
  ) {
    return null;
  }
  const raw = Buffer.from(token, 'base64url');
  if (raw.length <= SEAL_IV_BYTES + SEAL_TAG_BYTES) return null;
  let plaintext: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealKey(secret, purpose), raw.subarray(0, SEAL_IV_BYTES), {
      authTagLength: SEAL_TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(purpose, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - SEAL_TAG_BYTES));
    plaintext = Buffer.concat([
      decipher.update(raw.subarray(SEAL_IV_BYTES, raw.length - SEAL_TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
  } catch {
    // GCM authentication failure: tampered, other secret or other purpose.
    return null;
  }
  let payload: unknown;
  try {
    payload = JSON.parse(plaintext);
  } catch {
    return null;
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return null;
  const exp = (payload as Record<string, unknown>)['exp'];
  if (typeof exp !== 'number' || !(now < exp)) return null;
  return payload as Record<string, unknown>;
}

/** A random base64url string of `bytes` random bytes (default 32), for ids, nonces and PKCE verifiers. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
