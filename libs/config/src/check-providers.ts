// Semantic checks of `providers`: URLs, secrets, cookie domain, regexes, CEL mappings, uniqueness.
import { checkScopeMappings } from '@portcullis/expressions';
import { compileSkipRules, externalHostKey } from '@portcullis/protocol';
import { checkCertKeyPair, checkCertificateHost } from './check-certificate.ts';
import { CONTROL_CHARS } from './check-outpost.ts';
import type { CheckSink, ConfigProblem } from './config-problem.ts';
import { joinIndex } from './config-path.ts';
import { isLoopbackHost, parseHttpUrl } from './parse-http-url.ts';
import type { Loose } from './schema-kinds.ts';
import type { ProviderConfig } from './types.ts';

const MIN_COOKIE_SECRET_CHARS = 32;
// authentik slugs: letters, digits, "_" and "-".
const SLUG = /^[A-Za-z0-9_-]+$/;
// RFC 9110 token; "*" is itself a token character, so `X-Auth-Request-*` passes.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const DOMAIN = /^\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/**
 * Pushes every problem of every provider and across providers. Normalises `external_host` in
 * place (no trailing `/`, lower-case host) so uniqueness and routing compare like with like.
 */
export function checkProviders(providers: Loose<ProviderConfig[]>, sink: CheckSink): void {
  if (!providers) return;
  providers.forEach((provider, i) => {
    if (provider) checkProvider(provider, joinIndex('providers', i), sink);
  });
  reportDuplicates(providers, 'name', sink.problems, 'give each provider its own name');
  reportDuplicates(providers, 'external_host', sink.problems, 'each external_host may belong to one provider only; change or remove one of them');
  reportSharedHosts(providers, sink.problems);
}

/**
 * Requests are routed to a provider by host (and port) alone, as in authentik: a second provider on
 * the host of another, with another path or scheme, would never get a request (the first one would
 * take them all, proxying them to its own upstream). Exact duplicates are reported by reportDuplicates.
 */
function reportSharedHosts(providers: NonNullable<Loose<ProviderConfig[]>>, problems: ConfigProblem[]): void {
  const first = new Map<string, { index: number; externalHost: string }>();
  providers.forEach((p, i) => {
    const value = p?.external_host;
    if (typeof value !== 'string') return;
    const key = externalHostKey(value);
    if (key === undefined) return;
    const earlier = first.get(key);
    if (earlier === undefined) {
      first.set(key, { index: i, externalHost: value });
      return;
    }
    if (earlier.externalHost.toLowerCase() === value.toLowerCase()) return;
    problems.push({
      path: `${joinIndex('providers', i)}.external_host`,
      reason: `"${value}" has the host of providers[${earlier.index}] (${earlier.externalHost}); requests are routed by host, so this provider would never receive one`,
      fix: 'give each provider its own host (e.g. a subdomain); a path in external_host does not separate providers',
    });
  });
}

function checkProvider(p: NonNullable<Loose<ProviderConfig>>, path: string, sink: CheckSink): void {
  const { problems, warnings } = sink;
  if (p.name !== undefined && CONTROL_CHARS.test(p.name)) {
    problems.push({ path: `${path}.name`, reason: 'contains control characters, which cannot be sent in a header', fix: `set ${path}.name to plain text on one line` });
  }
  if (p.application_slug !== undefined && !SLUG.test(p.application_slug)) {
    problems.push({
      path: `${path}.application_slug`,
      reason: `"${p.application_slug}" is not a slug`,
      fix: `set ${path}.application_slug to letters, digits, "_" and "-" only (it defaults to the name)`,
    });
  }
  const host = checkExternalHost(p, path, problems);
  checkInternalHost(p, path, sink);
  if (p.issuer !== undefined) {
    const url = parseHttpUrl(p.issuer);
    if ('reason' in url) {
      problems.push({ path: `${path}.issuer`, reason: url.reason, fix: `set ${path}.issuer to the IdP's issuer URL, e.g. https://idp.company/application/o/test/` });
    } else if (url.search !== '' || url.hash !== '') {
      problems.push({ path: `${path}.issuer`, reason: 'has a query or fragment, which an OIDC issuer never has', fix: `remove everything from "?" or "#" in ${path}.issuer` });
    } else if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
      warnings.push({
        path: `${path}.issuer`,
        reason: `uses plain http to ${url.hostname}, so the client secret and tokens cross the network unencrypted`,
        fix: `use an https:// issuer unless this is a test setup`,
      });
    }
  }
  if (p.cookie_secret !== undefined && [...p.cookie_secret].length < MIN_COOKIE_SECRET_CHARS) {
    problems.push({
      path: `${path}.cookie_secret`,
      reason: `is ${[...p.cookie_secret].length} characters long; at least ${MIN_COOKIE_SECRET_CHARS} are needed to sign cookies safely`,
      fix: `set ${path}.cookie_secret to at least ${MIN_COOKIE_SECRET_CHARS} random characters, e.g. the output of \`openssl rand -base64 32\``,
    });
  }
  checkCookieDomain(p, path, host, problems);
  checkSkipPathRegex(p.skip_path_regex, path, problems);
  if (p.scopes) {
    if (!p.scopes.includes('openid')) {
      problems.push({ path: `${path}.scopes`, reason: 'does not include openid, so no ID token would be issued', fix: `add openid to ${path}.scopes, e.g. [openid, profile, email]` });
    }
    p.scopes.forEach((scope, j) => {
      if (scope !== undefined && /\s/.test(scope)) {
        problems.push({ path: joinIndex(`${path}.scopes`, j), reason: `"${scope}" contains whitespace`, fix: 'write each scope as its own list item' });
      }
    });
  }
  if (p.basic_auth_enabled === true && p.basic_auth_password_attribute === '') {
    problems.push({
      path: `${path}.basic_auth_password_attribute`,
      reason: 'is required when basic_auth_enabled is true',
      fix: `set ${path}.basic_auth_password_attribute to the user attribute holding the password, or set basic_auth_enabled to false`,
    });
  }
  if (typeof p.post_logout_redirect_uri === 'string') {
    const url = parseHttpUrl(p.post_logout_redirect_uri);
    if ('reason' in url) {
      problems.push({ path: `${path}.post_logout_redirect_uri`, reason: url.reason, fix: `set ${path}.post_logout_redirect_uri to an http(s) URL, or null` });
    }
  }
  p.strip_headers?.forEach((name, j) => {
    if (name !== undefined && !HEADER_NAME.test(name)) {
      const itemPath = joinIndex(`${path}.strip_headers`, j);
      problems.push({ path: itemPath, reason: `"${name}" is not a header name`, fix: `set ${itemPath} to a header name such as X-Forwarded-User (a trailing * matches a prefix)` });
    }
  });
  if (p.tls) {
    const cert = checkCertKeyPair(p.tls.cert_file, p.tls.key_file, `${path}.tls`, sink);
    // The HTTPS listener serves it for this host (SNI): it should name the host.
    if (cert && host && p.tls.cert_file) checkCertificateHost(cert, p.tls.cert_file, host, `${path}.tls`, `${path}.external_host`, warnings);
  }
  checkMappings(p.scope_mappings, path, problems);
}

/** Validates and normalises external_host; returns its hostname when valid. */
function checkExternalHost(p: NonNullable<Loose<ProviderConfig>>, path: string, problems: ConfigProblem[]): string | undefined {
  if (p.external_host === undefined) return undefined;
  const fix = `set ${path}.external_host to the public URL of the application, e.g. https://app.company`;
  const url = parseHttpUrl(p.external_host);
  if ('reason' in url) {
    problems.push({ path: `${path}.external_host`, reason: url.reason, fix });
    return undefined;
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    problems.push({ path: `${path}.external_host`, reason: 'has a query, fragment or credentials', fix: `${fix} (scheme, host, port and path only)` });
    return undefined;
  }
  p.external_host = `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
  return url.hostname;
}

function checkInternalHost(p: NonNullable<Loose<ProviderConfig>>, path: string, sink: CheckSink): void {
  if (p.mode === 'proxy' && p.internal_host === null) {
    sink.problems.push({ path: `${path}.internal_host`, reason: 'is required in proxy mode', fix: `set ${path}.internal_host to the upstream URL, e.g. http://127.0.0.1:8080` });
  }
  if (typeof p.internal_host !== 'string') return;
  if (p.mode !== undefined && p.mode !== 'proxy') {
    sink.warnings.push({
      path: `${path}.internal_host`,
      reason: `is ignored in ${p.mode} mode (the front proxy reaches the upstream itself)`,
      fix: `remove ${path}.internal_host, or set mode to proxy`,
    });
  }
  const url = parseHttpUrl(p.internal_host);
  if ('reason' in url) {
    sink.problems.push({ path: `${path}.internal_host`, reason: url.reason, fix: `set ${path}.internal_host to an http(s) upstream URL, e.g. http://127.0.0.1:8080` });
  }
}

function checkCookieDomain(p: NonNullable<Loose<ProviderConfig>>, path: string, host: string | undefined, problems: ConfigProblem[]): void {
  const domainPath = `${path}.cookie_domain`;
  const parent = host?.includes('.') ? host.slice(host.indexOf('.') + 1) : 'company';
  if (p.cookie_domain === '' && p.mode === 'forward_domain') {
    problems.push({ path: domainPath, reason: 'is required in forward_domain mode', fix: `set ${domainPath} to the parent domain of the protected hosts, e.g. ${parent}` });
    return;
  }
  if (!p.cookie_domain) return;
  if (!DOMAIN.test(p.cookie_domain)) {
    problems.push({ path: domainPath, reason: `"${p.cookie_domain}" is not a bare domain`, fix: `set ${domainPath} to a domain without scheme, port or path, e.g. ${parent}` });
    return;
  }
  if (host === undefined) return;
  const domain = p.cookie_domain.replace(/^\./, '').toLowerCase();
  // Dot boundary: cookie domain company must not cover evilcompany (authentik only checks a string suffix).
  if (host !== domain && !host.endsWith(`.${domain}`)) {
    problems.push({
      path: domainPath,
      reason: `"${p.cookie_domain}" does not contain the external host ${host}, so browsers would reject the cookie`,
      fix: `set ${domainPath} to ${host} or one of its parent domains, e.g. ${parent}`,
    });
  }
}

function checkSkipPathRegex(text: string | undefined, path: string, problems: ConfigProblem[]): void {
  if (!text) return;
  const lines = text.split('\n');
  for (const e of compileSkipRules(text).errors) {
    const source = (lines[e.line - 1] ?? '').replace(/\r$/, '');
    problems.push({
      path: `${path}.skip_path_regex (line ${e.line})`,
      reason: `${JSON.stringify(source)} does not compile: ${e.message}`,
      fix: `fix or remove line ${e.line}; patterns use RE2 (Go) syntax, which has no lookaround or backreferences`,
    });
  }
}

function checkMappings(mappings: Loose<ProviderConfig['scope_mappings']>, path: string, problems: ConfigProblem[]): void {
  if (!mappings) return;
  const complete: Array<{ name: string; expression: string }> = [];
  for (const m of mappings) {
    // A mapping with a type problem is already reported; compiling the rest would shift indexes.
    if (m?.name === undefined || m.expression === undefined) return;
    complete.push({ name: m.name, expression: m.expression });
  }
  for (const e of checkScopeMappings(complete)) {
    const mappingPath = joinIndex(`${path}.scope_mappings`, e.index);
    problems.push({
      path: `${mappingPath}.expression`,
      reason: `mapping "${e.name}" does not compile: ${e.message}`,
      fix: `fix the CEL expression in ${mappingPath}.expression; it must return a map, e.g. {"ak_proxy": {"user_attributes": {}}}`,
    });
  }
}

function reportDuplicates(
  providers: NonNullable<Loose<ProviderConfig[]>>,
  key: 'name' | 'external_host',
  problems: ConfigProblem[],
  fix: string,
): void {
  const firstIndex = new Map<string, number>();
  providers.forEach((p, i) => {
    const value = p?.[key];
    if (typeof value !== 'string') return;
    const normalised = value.toLowerCase();
    const first = firstIndex.get(normalised);
    if (first === undefined) {
      firstIndex.set(normalised, i);
      return;
    }
    problems.push({ path: `${joinIndex('providers', i)}.${key}`, reason: `"${value}" is already used by providers[${first}]`, fix });
  });
}
