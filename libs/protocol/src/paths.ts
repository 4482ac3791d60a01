// Request path normalisation for allow-list (skip rule) matching, and request-target sanity checks.

/** Result of {@link normalizePath}. */
export interface NormalizedPath {
  /** Decoded path, dot segments resolved, repeated slashes merged, always starting with `/`. */
  path: string;
  /**
   * False when the raw path hid a separator or delimiter (`%2F`, `%5C`, `%3F`, `%23`), held a raw
   * backslash, or had `.`/`..` segments (raw or encoded, also with a `;` parameter: `..;x`): the upstream may split or resolve such a
   * path differently from us, so it must not be allow-listed. Browsers never send any of these.
   */
  skipEligible: boolean;
}

/** Anything that needs the slow path: escapes, dot segments, doubled slashes, backslashes, controls. */
const NEEDS_WORK = /%|\/\.|\/\/|\\|[\x00\r\n]|^[^/]/;
const ENCODED_DELIMITER = /%(?:2f|5c|3f|23)/i;
const FORBIDDEN_DECODED = /[\x00\r\n]/;
/** A `.` or `..` segment followed by a `;` path parameter. */
const DOT_SEGMENT_WITH_PARAMETER = /^\.\.?;/;

/**
 * Normalises the path of a request target (no query) for skip-rule matching (HOT). Percent-decodes
 * once (a malformed escape or invalid UTF-8 → null), resolves `.` and `..` (never above `/`), merges
 * repeated slashes and keeps a trailing slash. A decoded NUL, CR or LF → null.
 */
export function normalizePath(rawPath: string): NormalizedPath | null {
  if (rawPath === '') return { path: '/', skipEligible: true };
  if (!NEEDS_WORK.test(rawPath)) return { path: rawPath, skipEligible: true };

  const skipEligible = !rawPath.includes('\\') && !(rawPath.includes('%') && ENCODED_DELIMITER.test(rawPath));
  let decoded = rawPath;
  if (rawPath.includes('%')) {
    try {
      decoded = decodeURIComponent(rawPath);
    } catch {
      return null;
    }
  }
  if (FORBIDDEN_DECODED.test(decoded)) return null;
  const resolved = removeDotSegments(decoded);
  return { path: resolved.path, skipEligible: skipEligible && !resolved.hadDotSegments };
}

/**
 * RFC 3986 §5.2.4 on `/`-separated segments, also dropping empty segments (merged slashes). Reports
 * whether a dot segment was seen: `/admin//../public` is `/public` here but `/admin/public` to an
 * RFC resolver, and many upstream routers do not resolve at all, so such paths are never allow-listed.
 */
function removeDotSegments(path: string): { path: string; hadDotSegments: boolean } {
  const segments = path.split('/');
  const output: string[] = [];
  const last = segments.length - 1;
  // A path that ends in `/`, `/.` or `/..` names a directory, so the result keeps a trailing slash.
  let trailingSlash = false;
  let hadDotSegments = false;
  for (let i = 0; i <= last; i++) {
    const segment = segments[i]!;
    if (segment === '' || segment === '.') {
      if (segment === '.') hadDotSegments = true;
      if (i === last && i > 0) trailingSlash = true;
      continue;
    }
    if (segment === '..') {
      hadDotSegments = true;
      output.pop();
      if (i === last) trailingSlash = true;
      continue;
    }
    // `..;x` and `.;x`: Tomcat, Jetty and Spring drop the `;` path parameter and then resolve the
    // dot segment (`/public/..;/admin` is `/admin` to them); kept as a segment here, never allow-listed.
    if (segment.charCodeAt(0) === 0x2e /* . */ && DOT_SEGMENT_WITH_PARAMETER.test(segment)) hadDotSegments = true;
    output.push(segment);
  }
  if (output.length === 0) return { path: '/', hadDotSegments };
  return { path: '/' + output.join('/') + (trailingSlash ? '/' : ''), hadDotSegments };
}

/** True when the raw request target contains `#`, which a client must never send. */
export function hasFragmentOnRequestLine(target: string): boolean {
  return target.includes('#');
}
