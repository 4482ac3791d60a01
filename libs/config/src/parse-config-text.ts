// Reads the config file (or given text) and parses it as YAML 1.2 (so JSON too), reporting syntax errors with line and column.
import { readFileSync } from 'node:fs';
import { type YAMLError, parseDocument } from 'yaml';
import type { ConfigProblem } from './config-problem.ts';
import { describeValue, isMapping } from './config-path.ts';

/** The parsed top-level mapping (`{}` for an empty file), or undefined when it could not be read. */
export interface ParsedConfigText {
  raw: Record<string, unknown> | undefined;
  problems: ConfigProblem[];
  warnings: ConfigProblem[];
}

/**
 * Reads `file` (unless `text` is given: then `file` only names the source in problems) and parses it.
 * Neither given → an empty mapping.
 */
export function parseConfigText(source: { file?: string; text?: string }): ParsedConfigText {
  const label = source.file === undefined ? 'config text' : `file ${source.file}`;
  let text = source.text;
  if (text === undefined && source.file !== undefined) {
    try {
      text = readFileSync(source.file, 'utf8');
    } catch (err) {
      return {
        raw: undefined,
        problems: [
          {
            path: label,
            reason: `cannot read the config file: ${err instanceof Error ? err.message : String(err)}`,
            fix: `check the path given with --config or PORTCULLIS_CONFIG, and that the file is readable by the user running Portcullis`,
          },
        ],
        warnings: [],
      };
    }
  }
  if (text === undefined) return { raw: {}, problems: [], warnings: [] };
  return parseYaml(text, label);
}

function parseYaml(text: string, label: string): ParsedConfigText {
  // YAML 1.2 core schema: yes/no/on/off stay strings, and any JSON document parses the same as JSON.
  const doc = parseDocument(text, { version: '1.2', prettyErrors: true, uniqueKeys: true });
  const warnings = doc.warnings.map((w) => toProblem(w, label));
  if (doc.errors.length > 0) {
    // Later checks on a half-parsed tree would only add noise.
    return { raw: undefined, problems: doc.errors.map((e) => toProblem(e, label)), warnings };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // Unresolved or exploding aliases surface only when converting.
    return {
      raw: undefined,
      problems: [
        {
          path: label,
          reason: `YAML error: ${err instanceof Error ? err.message : String(err)}`,
          fix: 'define each anchor (&name) before its alias (*name), and do not nest aliases deeply',
        },
      ],
      warnings,
    };
  }
  if (value === null || value === undefined) return { raw: {}, problems: [], warnings };
  if (!isMapping(value)) {
    return {
      raw: undefined,
      problems: [
        {
          path: label,
          reason: `the top level must be a mapping, got ${describeValue(value)}`,
          fix: 'write the file as a mapping with the keys log_level, outpost, cluster and providers',
        },
      ],
      warnings,
    };
  }
  return { raw: value, problems: [], warnings };
}

function toProblem(e: YAMLError, label: string): ConfigProblem {
  const pos = e.linePos?.[0];
  const where = pos ? ` (line ${pos.line}, column ${pos.col})` : '';
  // prettyErrors appends " at line L, column C:" and a source excerpt; the path already says where.
  const reason = (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '');
  return { path: label + where, reason: `YAML: ${reason}`, fix: yamlFix(e.code, pos?.line) };
}

function yamlFix(code: string, line: number | undefined): string {
  const at = line === undefined ? '' : ` at line ${line}`;
  switch (code) {
    case 'DUPLICATE_KEY':
      return `remove or rename the repeated key${at}`;
    case 'TAB_AS_INDENT':
      return `indent with spaces instead of tabs${at}`;
    case 'MULTIPLE_DOCS':
      return `keep a single YAML document: remove the "---" separator${at} and what follows, or merge it into the first`;
    case 'TAG_RESOLVE_FAILED':
      return `remove the unknown !tag${at}`;
    default:
      return `correct the YAML syntax${at}; quote values that contain ": " or " #", and indent nested keys consistently`;
  }
}
