// Semantic checks of the `outpost` section: listen addresses, trusted proxy CIDRs, header-safe name.
import { whyInvalidCidr } from './check-cidr.ts';
import type { ConfigProblem } from './config-problem.ts';
import { joinIndex } from './config-path.ts';
import { type HostPort, parseHostPort } from './parse-host-port.ts';
import type { Loose } from './schema-kinds.ts';
import type { ListenConfig, OutpostConfig } from './types.ts';

/** Control characters cannot travel in an HTTP header value. */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Pushes every problem of the outpost section. */
export function checkOutpost(outpost: Loose<OutpostConfig>, problems: ConfigProblem[]): void {
  if (!outpost) return;
  if (outpost.name !== undefined && CONTROL_CHARS.test(outpost.name)) {
    problems.push({
      path: 'outpost.name',
      reason: 'contains control characters, which cannot be sent in X-authentik-meta-outpost',
      fix: 'set outpost.name to plain text on one line',
    });
  }
  checkListen(outpost.listen, problems);
  outpost.trusted_proxy_cidrs?.forEach((cidr, i) => {
    if (cidr === undefined) return;
    const why = whyInvalidCidr(cidr);
    const path = joinIndex('outpost.trusted_proxy_cidrs', i);
    if (why) problems.push({ path, reason: `"${cidr}" ${why}`, fix: `set ${path} to a CIDR such as 10.0.0.0/8 or fc00::/7` });
  });
}

function checkListen(listen: Loose<ListenConfig>, problems: ConfigProblem[]): void {
  if (!listen) return;
  const seen: Array<{ key: string; address: HostPort }> = [];
  for (const key of ['http', 'https', 'metrics'] as const) {
    const value = listen[key];
    if (value === null || value === undefined) continue;
    const path = `outpost.listen.${key}`;
    const parsed = parseHostPort(value);
    if ('reason' in parsed) {
      problems.push({ path, reason: `"${value}" ${parsed.reason}`, fix: `set ${path} to host:port, e.g. 0.0.0.0:9000 or [::]:9000` });
      continue;
    }
    const clash = seen.find((s) => s.address.port === parsed.port && hostsOverlap(s.address.host, parsed.host));
    if (clash) {
      problems.push({
        path,
        reason: `uses port ${parsed.port}, already taken by outpost.listen.${clash.key}`,
        fix: `give ${path} a different port${key === 'http' ? '' : ', or set it to null to turn it off'}`,
      });
    }
    seen.push({ key, address: parsed });
  }
}

function hostsOverlap(a: string, b: string): boolean {
  const any = (h: string) => h === '0.0.0.0' || h === '::';
  return a === b || any(a) || any(b);
}
