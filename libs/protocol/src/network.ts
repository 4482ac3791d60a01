// CIDR matching for trusted proxies and client-address resolution from X-Forwarded-For.
import { BlockList, isIP } from 'node:net';

/** A CIDR list entry that could not be understood. */
export interface CidrError {
  /** 0-based index in the list given. */
  index: number;
  message: string;
}

/** Result of {@link buildCidrMatcher}. */
export interface CidrMatcher {
  /** True when `ip` (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of the ranges (HOT). */
  matches(ip: string): boolean;
  errors: CidrError[];
}

const MAPPED_PREFIX = '::ffff:';
const PREFIX_LENGTH = /^[0-9]{1,3}$/;
/** Distinct addresses remembered per matcher before the memo starts over. */
const MEMO_LIMIT = 4096;

/**
 * Turns `::ffff:1.2.3.4` into `1.2.3.4` and drops an IPv6 zone (`fe80::1%eth0`), so an address
 * compares the same whichever way the socket reported it.
 */
export function unmapAddress(ip: string): string {
  let address = ip;
  const zone = address.indexOf('%');
  if (zone !== -1) address = address.slice(0, zone);
  if (address.length > MAPPED_PREFIX.length && address.slice(0, MAPPED_PREFIX.length).toLowerCase() === MAPPED_PREFIX) {
    const v4 = address.slice(MAPPED_PREFIX.length);
    if (isIP(v4) === 4) return v4;
  }
  return address;
}

/**
 * Builds a matcher for IPv4/IPv6 CIDRs and bare addresses (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`).
 * IPv4-mapped IPv6 addresses match IPv4 ranges. Bad entries are reported in `errors` and skipped.
 */
export function buildCidrMatcher(cidrs: readonly string[]): CidrMatcher {
  const list = new BlockList();
  const errors: CidrError[] = [];
  cidrs.forEach((entry, index) => {
    const text = entry.trim();
    const slash = text.indexOf('/');
    const address = slash === -1 ? text : text.slice(0, slash);
    const family = isIP(address);
    if (family === 0) {
      errors.push({ index, message: `not an IP address or CIDR: ${JSON.stringify(entry)}` });
      return;
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      list.addAddress(address, type);
      return;
    }
    const prefixText = text.slice(slash + 1);
    const prefix = Number(prefixText);
    if (!PREFIX_LENGTH.test(prefixText) || prefix > (family === 4 ? 32 : 128)) {
      errors.push({ index, message: `invalid prefix length in ${JSON.stringify(entry)}` });
      return;
    }
    list.addSubnet(address, prefix, type);
  });

  // BlockList.check costs ~3 µs; peers and proxy hops repeat, so remember recent answers. The cap
  // bounds memory when X-Forwarded-For entries are attacker-chosen; clearing is cheaper than an LRU.
  const memo = new Map<string, boolean>();
  return {
    matches(ip: string): boolean {
      const known = memo.get(ip);
      if (known !== undefined) return known;
      const address = unmapAddress(ip);
      const family = isIP(address);
      const result = family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
      if (memo.size >= MEMO_LIMIT) memo.clear();
      memo.set(ip, result);
      return result;
    },
    errors,
  };
}

/** Where a request really comes from, and the X-Forwarded-For to pass on. */
export interface ClientAddress {
  clientIp: string;
  forwardedFor: string;
}

/** Parses one X-Forwarded-For entry; tolerates `[v6]:port` and `v4:port`. Undefined for garbage. */
function parseForwardedEntry(entry: string): string | undefined {
  let text = entry.trim();
  if (text.charCodeAt(0) === 0x5b /* [ */) {
    const close = text.indexOf(']');
    if (close === -1) return undefined;
    text = text.slice(1, close);
  } else {
    const colon = text.indexOf(':');
    // Exactly one colon: IPv4 with a port (some proxies append it).
    if (colon !== -1 && text.indexOf(':', colon + 1) === -1) text = text.slice(0, colon);
  }
  const address = unmapAddress(text);
  return isIP(address) === 0 ? undefined : address;
}

/**
 * Works out the client address. An untrusted peer's X-Forwarded-For is ignored (client = peer,
 * forwardedFor = peer). From a trusted peer, the client is the rightmost X-Forwarded-For address
 * that is not trusted (the leftmost valid one if all are trusted, the peer if none is valid),
 * skipping garbage entries, and forwardedFor = incoming chain + ", " + peer. `::ffff:` is stripped
 * from IPv4-mapped peers.
 */
export function resolveClientAddress(
  peer: string,
  xff: string | undefined,
  isTrusted: (ip: string) => boolean,
): ClientAddress {
  const peerIp = unmapAddress(peer);
  if (!isTrusted(peerIp)) return { clientIp: peerIp, forwardedFor: peerIp };
  const chain = xff?.trim() ?? '';
  if (chain === '') return { clientIp: peerIp, forwardedFor: peerIp };

  const entries = chain.split(',');
  let leftmostValid: string | undefined;
  let clientIp: string | undefined;
  for (let i = entries.length - 1; i >= 0; i--) {
    const address = parseForwardedEntry(entries[i]!);
    if (address === undefined) continue;
    if (!isTrusted(address)) {
      clientIp = address;
      break;
    }
    leftmostValid = address;
  }
  return { clientIp: clientIp ?? leftmostValid ?? peerIp, forwardedFor: chain + ', ' + peerIp };
}
