// Serves the gateways' session activity reports: validates each batch and records it in the store (idle timeouts).
import type { RequestBus, Subscription } from '@portcullis/bus';
import { type ActivityReport, SESSION_SUBJECTS } from '@portcullis/events';
import type { SessionActivity, SessionUpkeep } from '@portcullis/store';

/** Most entries one report may carry (gateways send at most 5000 per request). */
export const MAX_REPORT_ENTRIES = 10_000;
const MAX_ID_LENGTH = 128;
const MAX_PROVIDER_LENGTH = 256;

/** What the activity server answers to a report it recorded. */
export interface ActivityReply {
  recorded: number;
}

/**
 * Checks a report from the bus and returns its entries; throws an Error naming the first problem
 * (the gateway sees it as the request's error). `now` caps each use's time, so a gateway whose clock
 * runs ahead cannot keep sessions alive beyond their idle timeout.
 */
export function parseActivityReport(payload: unknown, now: number): SessionActivity[] {
  const fail = (what: string): never => {
    throw new Error(
      `invalid session activity report: ${what}. Reports come from gateways of the same release: run the same Portcullis version on every node`,
    );
  };
  if (payload === null || typeof payload !== 'object' || !Array.isArray((payload as Partial<ActivityReport>).entries)) {
    return fail('expected { entries: [...] }');
  }
  const entries = (payload as ActivityReport).entries as unknown[];
  if (entries.length > MAX_REPORT_ENTRIES) fail(`${entries.length} entries, at most ${MAX_REPORT_ENTRIES} per report`);
  const out: SessionActivity[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Partial<Record<keyof SessionActivity, unknown>> | null;
    if (e === null || typeof e !== 'object') return fail(`entries[${i}] is not an object`);
    const { sessionId, provider, at } = e;
    if (typeof sessionId !== 'string' || sessionId === '' || sessionId.length > MAX_ID_LENGTH) {
      fail(`entries[${i}].sessionId must be a string of 1 to ${MAX_ID_LENGTH} characters`);
    }
    if (typeof provider !== 'string' || provider === '' || provider.length > MAX_PROVIDER_LENGTH) {
      fail(`entries[${i}].provider must be a string of 1 to ${MAX_PROVIDER_LENGTH} characters`);
    }
    if (typeof at !== 'number' || !Number.isSafeInteger(at) || at <= 0) fail(`entries[${i}].at must be a positive integer (unix ms)`);
    out.push({ sessionId: sessionId as string, provider: provider as string, at: Math.min(at as number, now) });
  }
  return out;
}

/** Options of {@link serveActivityReports}. */
export interface ActivityServerDeps {
  rpc: Pick<RequestBus, 'serve'>;
  store: Pick<SessionUpkeep, 'recordActivity'>;
  /** Clock (unix ms); default Date.now. */
  now?: () => number;
  /** Called with each refused report's error (logs, metrics). */
  onRefused?: (err: Error) => void;
}

/**
 * Serves {@link SESSION_SUBJECTS.activity} in the queue group (each report reaches one replica). A
 * malformed report is refused as a whole and changes nothing; a store failure reaches the gateway,
 * which keeps the entries for its next report.
 */
export function serveActivityReports(deps: ActivityServerDeps): Subscription {
  const now = deps.now ?? Date.now;
  return deps.rpc.serve(SESSION_SUBJECTS.activity, async (payload): Promise<ActivityReply> => {
    let entries: SessionActivity[];
    try {
      entries = parseActivityReport(payload, now());
    } catch (err) {
      deps.onRefused?.(err as Error);
      throw err;
    }
    if (entries.length > 0) await deps.store.recordActivity(entries);
    return { recorded: entries.length };
  });
}
