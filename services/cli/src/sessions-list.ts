// `portcullis sessions list`: live sessions from the projection, as one JSON array or a readable table.
import type { SessionRecord } from '@portcullis/store';

/** One entry of `sessions list --json` (snake_case, like the rest of the outpost's wire formats). */
export interface SessionSummary {
  session_id: string;
  sub: string;
  /** The `preferred_username` claim, when the session has one. */
  username: string | null;
  provider: string;
  /** ISO-8601. */
  created_at: string;
  /** ISO-8601. */
  expires_at: string;
  /** Log sequence of the SessionStarted event. */
  seq: number;
}

/** The summary of a projected session. */
export function summarizeSession(r: SessionRecord): SessionSummary {
  const username = r.claims.preferred_username;
  return {
    session_id: r.sessionId,
    sub: r.sub,
    username: typeof username === 'string' ? username : null,
    provider: r.provider,
    created_at: new Date(r.createdAt).toISOString(),
    expires_at: new Date(r.expiresAt).toISOString(),
    seq: r.seq,
  };
}

/** `--json`: one array on one line (scripts pipe it to jq). */
export function formatSessionsJson(sessions: SessionSummary[]): string {
  return `${JSON.stringify(sessions)}\n`;
}

const COLUMNS: Array<[header: string, pick: (s: SessionSummary) => string]> = [
  ['SESSION', (s) => s.session_id],
  ['USER', (s) => s.username ?? '-'],
  ['PROVIDER', (s) => s.provider],
  ['CREATED', (s) => s.created_at],
  ['EXPIRES', (s) => s.expires_at],
  ['SEQ', (s) => String(s.seq)],
  ['SUB', (s) => s.sub],
];

/** A table with aligned columns and a count line (or a plain sentence when there is nothing to show). */
export function formatSessionsTable(sessions: SessionSummary[], filter: { sub?: string } = {}): string {
  const scope = filter.sub !== undefined ? ` for sub ${filter.sub}` : '';
  if (sessions.length === 0) return `no live sessions${scope}\n`;
  const rows = [COLUMNS.map(([h]) => h), ...sessions.map((s) => COLUMNS.map(([, pick]) => pick(s)))];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
  return `${lines.join('\n')}\n${sessions.length} live session${sessions.length === 1 ? '' : 's'}${scope}\n`;
}
