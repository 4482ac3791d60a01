// Checks CIDR notation (`10.0.0.0/8`, `fc00::/7`) with node:net.
import { BlockList, isIP } from 'node:net';

/** Returns why `value` is not a valid CIDR, or undefined when it is. */
export function whyInvalidCidr(value: string): string | undefined {
  const slash = value.indexOf('/');
  if (slash < 0) {
    const family = isIP(value);
    return family === 0 ? 'is not a CIDR' : `has no prefix length (a single address is ${value}/${family === 4 ? 32 : 128})`;
  }
  const address = value.slice(0, slash);
  const prefixText = value.slice(slash + 1);
  const family = isIP(address);
  if (family === 0) return `"${address}" is not an IP address`;
  const max = family === 4 ? 32 : 128;
  const prefix = Number(prefixText);
  if (!/^\d+$/.test(prefixText) || prefix > max) return `prefix length "${prefixText}" is not a number from 0 to ${max}`;
  try {
    // Same parser the gateway's BlockList uses, so what passes here also loads there.
    new BlockList().addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return undefined;
}
