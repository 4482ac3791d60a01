// Python's urllib.parse.urlparse, so authentik mappings like `urlparse(host).netloc` keep their meaning in CEL.
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The fields of Python's `ParseResult` plus its `hostname` and `port` properties, as strings.
 * `hostname` and `port` are `""` where Python gives `None`.
 */
export interface PythonUrlParts {
  scheme: string;
  netloc: string;
  path: string;
  params: string;
  query: string;
  fragment: string;
  hostname: string;
  port: string;
}

// Python strips WHATWG "C0 control or space" from the left only: some callers rely on trailing spaces.
const LEADING_C0_OR_SPACE = /^[\u0000-\u0020]+/;
const UNSAFE_URL_CHARS = /[\t\r\n]/g;
const SCHEME_CHARS = /^[A-Za-z0-9+\-.]+$/;
// Schemes whose last path segment may carry `;params` (urllib.parse.uses_params).
const USES_PARAMS = new Set([
  '',
  'ftp',
  'hdl',
  'prospero',
  'http',
  'imap',
  'https',
  'shttp',
  'rtsp',
  'rtsps',
  'rtspu',
  'sip',
  'sips',
  'mms',
  'sftp',
  'tel',
]);

/**
 * Splits a URL exactly as current CPython's `urllib.parse.urlparse` does, including the bracketed-host
 * checks added for CVE-2024-11168 (no normalisation, no percent-decoding). Throws an Error with Python's message where Python raises ValueError; unlike
 * Python, an invalid port raises here rather than only when `.port` is read.
 */
export function parsePythonUrl(input: string): PythonUrlParts {
  let url = input.replace(LEADING_C0_OR_SPACE, '').replace(UNSAFE_URL_CHARS, '');
  let scheme = '';
  let netloc = '';
  let query = '';
  let fragment = '';

  const colon = url.indexOf(':');
  if (colon > 0 && /^[A-Za-z]/.test(url) && SCHEME_CHARS.test(url.slice(0, colon))) {
    scheme = url.slice(0, colon).toLowerCase();
    url = url.slice(colon + 1);
  }
  if (url.startsWith('//')) {
    [netloc, url] = splitNetloc(url);
    const open = netloc.includes('[');
    const close = netloc.includes(']');
    if (open !== close) throw new Error('Invalid IPv6 URL');
    if (open && close) checkBracketedNetloc(netloc);
  }
  const hash = url.indexOf('#');
  if (hash >= 0) {
    fragment = url.slice(hash + 1);
    url = url.slice(0, hash);
  }
  const question = url.indexOf('?');
  if (question >= 0) {
    query = url.slice(question + 1);
    url = url.slice(0, question);
  }
  checkNetlocNormalisation(netloc);

  let path = url;
  let params = '';
  if (USES_PARAMS.has(scheme) && path.includes(';')) [path, params] = splitParams(path);

  const { hostname, port } = readHostInfo(netloc);
  return { scheme, netloc, path, params, query, fragment, hostname, port };
}

/** urllib's `_splitnetloc`: the authority runs from after `//` to the first `/`, `?` or `#`. */
function splitNetloc(url: string): [string, string] {
  let end = url.length;
  for (const delimiter of '/?#') {
    const at = url.indexOf(delimiter, 2);
    if (at >= 0) end = Math.min(end, at);
  }
  return [url.slice(2, end), url.slice(end)];
}

/** urllib's `_splitparams`: params follow the first `;` of the last path segment. */
function splitParams(path: string): [string, string] {
  const semicolon = path.includes('/') ? path.indexOf(';', path.lastIndexOf('/')) : path.indexOf(';');
  if (semicolon < 0) return [path, ''];
  return [path.slice(0, semicolon), path.slice(semicolon + 1)];
}

/** Python's `str.partition`: text before the first separator, whether it was found, text after. */
function partition(text: string, separator: string): [string, boolean, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, false, ''] : [text.slice(0, at), true, text.slice(at + separator.length)];
}

/** The part of a netloc after any `user:password@`. */
function stripUserInfo(netloc: string): string {
  return netloc.slice(netloc.lastIndexOf('@') + 1);
}

/** urllib's `_check_bracketed_netloc`: the bracketed host must be a real IPv6 or IPvFuture address. */
function checkBracketedNetloc(netloc: string): void {
  const [beforeBracket, hasOpen, bracketed] = partition(stripUserInfo(netloc), '[');
  let host: string;
  if (hasOpen) {
    if (beforeBracket !== '') throw new Error('Invalid IPv6 URL');
    const [inside, , after] = partition(bracketed, ']');
    if (after !== '' && !after.startsWith(':')) throw new Error('Invalid IPv6 URL');
    host = inside;
  } else {
    host = partition(stripUserInfo(netloc), ':')[0];
  }
  if (host.startsWith('v')) {
    if (!/^v[a-fA-F0-9]+\.[^\n]+$/.test(host)) throw new Error('IPvFuture address is invalid');
  } else if (isIPv4(host)) {
    throw new Error('An IPv4 address cannot be in brackets');
  } else if (!isIPv6(host)) {
    throw new Error(`'${host}' does not appear to be an IPv4 or IPv6 address`);
  }
}

/** urllib's `_checknetloc`: reject netlocs whose NFKC form smuggles in URL delimiters. */
function checkNetlocNormalisation(netloc: string): void {
  if (/^[\u0000-\u007f]*$/.test(netloc)) return;
  const bare = netloc.replace(/[@:#?]/g, '');
  const normalised = bare.normalize('NFKC');
  if (bare === normalised) return;
  for (const c of '/?#@:') {
    if (normalised.includes(c)) {
      throw new Error(`netloc '${netloc}' contains invalid characters under NFKC normalization`);
    }
  }
}

/** Python's `hostname` and `port` properties (None → ""); the port is the decimal of Python's int. */
function readHostInfo(netloc: string): { hostname: string; port: string } {
  const hostInfo = stripUserInfo(netloc);
  const [, hasOpen, bracketed] = partition(hostInfo, '[');
  let host: string;
  let port: string;
  if (hasOpen) {
    const [inside, , after] = partition(bracketed, ']');
    host = inside;
    port = partition(after, ':')[2];
  } else {
    [host, , port] = partition(hostInfo, ':');
  }
  // A scoped IPv6 zone id (after `%`) keeps its case; only the address part is lowercased.
  const [address, hasZone, zone] = partition(host, '%');
  const hostname = address.toLowerCase() + (hasZone ? `%${zone}` : '');
  if (port === '') return { hostname, port: '' };
  if (!/^[0-9]+$/.test(port)) throw new Error(`Port could not be cast to integer value as '${port}'`);
  const value = Number.parseInt(port, 10);
  if (value > 65535) throw new Error('Port out of range 0-65535');
  return { hostname, port: String(value) };
}
