// Unauthenticated-path rules (`skip_path_regex`): RE2 compilation per line, matching, and the subject per mode.
import { RE2JS } from 're2js';
import type { ProviderMode } from './hosts.ts';
import { normalizeHost } from './hosts.ts';

/** Compiled skip rules; build with {@link compileSkipRules}. */
export interface SkipRules {
  /** The source lines that compiled, in order. */
  readonly sources: readonly string[];
  /** @internal compiled form of `sources`, same order. */
  readonly patterns: readonly RE2JS[];
  /** @internal per rule, the text a match must start with when the rule says only that (see {@link literalPrefix}), else null. */
  readonly prefixes: readonly (string | null)[];
}

/** RE2 (Go) metacharacters: outside these, a character matches itself. */
const META = new Set('\\.+*?()|[]{}^$');
/** ASCII punctuation: escaped, each matches itself in RE2 (`\d`, `\pL`, `\Q`, `\x41` ... are not punctuation). */
const PUNCTUATION = /^[!-/:-@[-`{-~]$/;

/**
 * The literal a rule of the form `^literal` or `^literal.*` tests for (the subject starts with it), or
 * null for any other rule. RE2 reads `^` as the start of the text (no multi-line flag can be set
 * without a group, which is not literal) and `.*` as possibly empty, so `subject.startsWith(literal)`
 * gives the same answer as the compiled rule, at a fraction of its cost (HOT: most skip rules are path
 * prefixes like `^/static/`, tested on every request without a session). skip-rules.test.ts holds it
 * to RE2JS on tricky and random rules and subjects.
 */
export function literalPrefix(source: string): string | null {
  if (!source.startsWith('^')) return null;
  const end = source.endsWith('.*') ? source.length - 2 : source.length;
  let literal = '';
  for (let i = 1; i < end; i++) {
    const c = source[i]!;
    if (c === '\\') {
      // An escape must stay before `end`: `^/a\.*` is `\.` repeated, not `/a` then `.*`.
      if (i + 1 >= end || !PUNCTUATION.test(source[i + 1]!)) return null;
      literal += source[++i];
    } else if (META.has(c)) {
      return null;
    } else {
      literal += c;
    }
  }
  return literal;
}

/** A line of `skip_path_regex` that failed to compile. */
export interface SkipRuleError {
  /** 1-based line number in the original text. */
  line: number;
  message: string;
}

/**
 * Compiles `skip_path_regex`: one RE2 (Go syntax) pattern per `\n`-separated line, a trailing `\r`
 * removed. Blank or whitespace-only lines are ignored — unlike authentik, where an empty line
 * matches everything and a trailing newline silently opens every path. Lines that do not compile are
 * reported in `errors` (and left out of `rules`); the config layer treats them as fatal.
 */
export function compileSkipRules(text: string): { rules: SkipRules; errors: SkipRuleError[] } {
  const sources: string[] = [];
  const patterns: RE2JS[] = [];
  const prefixes: (string | null)[] = [];
  const errors: SkipRuleError[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim() === '') continue;
    try {
      patterns.push(RE2JS.compile(line));
      prefixes.push(literalPrefix(line));
      sources.push(line);
    } catch (error) {
      errors.push({ line: i + 1, message: error instanceof Error ? error.message : String(error) });
    }
  }
  return { rules: { sources, patterns, prefixes }, errors };
}

/** True when any rule matches anywhere in `subject` (Go `MatchString`, unanchored) (HOT). */
export function matchesSkipRule(rules: SkipRules, subject: string): boolean {
  const { patterns, prefixes } = rules;
  for (let i = 0; i < patterns.length; i++) {
    const prefix = prefixes[i];
    if (prefix != null ? subject.startsWith(prefix) : patterns[i]!.test(subject)) return true;
  }
  return false;
}

/**
 * The string skip rules are tested against: the (already normalised) path in proxy and
 * forward_single; `scheme://host[:port]/path` in forward_domain, host lower case and the port only
 * when it is not the scheme's default. The query is never part of it.
 */
export function skipSubject(mode: ProviderMode, url: { protocol: string; host: string; pathname: string }): string {
  if (mode !== 'forward_domain') return url.pathname;
  const scheme = url.protocol.endsWith(':') ? url.protocol.slice(0, -1).toLowerCase() : url.protocol.toLowerCase();
  const host =
    scheme === 'http' || scheme === 'https' ? normalizeHost(url.host, scheme) : url.host.toLowerCase();
  return scheme + '://' + host + url.pathname;
}
