// How a SessionRecord is stored in Redis: '<identity JSON>\n<tokens JSON>', so a refresh swaps the tokens part as a string.
//
// Why two parts: a SessionRefreshed replaces the claims and tokens inside the apply script, and the
// script must not re-encode JSON (Lua's cjson writes an empty array as `{}` and rounds numbers to 14
// digits). It keeps the identity part byte for byte and puts the new tokens part (encoded here, in
// TypeScript) after it. Every script that needs the sub, provider, seq or expiry decodes only the
// small identity part. JSON.stringify never writes a raw newline, so the first '\n' is the boundary.
// A record written before the split is one JSON object; it reads the same way (identity = all of it).
import type { SessionRefreshedData } from '@portcullis/events';
import { StoreError, StoreErrorCode } from './errors.ts';
import type { SessionRecord } from './types.ts';

/** The fields a SessionRefreshed replaces: they live in the tokens part. */
type TokenFields = Pick<SessionRecord, 'claims' | 'accessToken' | 'idToken' | 'refreshToken' | 'refreshAt'>;

/** Splits a record into its two stored parts (fields left undefined stay absent, as in JSON). */
export function encodeRecordParts(record: SessionRecord): { identity: string; tokens: string } {
  const { claims, accessToken, idToken, refreshToken, refreshAt, ...identity } = record;
  return { identity: JSON.stringify(identity), tokens: encodeTokens({ claims, accessToken, idToken, refreshToken, refreshAt }) };
}

/** The tokens part of a refreshed session. */
export function encodeRefreshedTokens(d: SessionRefreshedData): string {
  const { claims, accessToken, idToken, refreshToken, refreshAt } = d;
  return encodeTokens({ claims, accessToken, idToken, refreshToken, refreshAt });
}

function encodeTokens(fields: TokenFields): string {
  return JSON.stringify(fields);
}

/** Reads a stored record back (either form); `where` names it in the error when it is not JSON. */
export function parseRecord(raw: string, where: string): SessionRecord {
  try {
    const boundary = raw.indexOf('\n');
    if (boundary < 0) return JSON.parse(raw) as SessionRecord;
    return { ...JSON.parse(raw.slice(0, boundary)), ...JSON.parse(raw.slice(boundary + 1)) } as SessionRecord;
  } catch (err) {
    throw new StoreError(StoreErrorCode.CorruptRecord, `the session record ${where} is not JSON: rebuild the projection from the log (portcullis sessions rebuild)`, { cause: err });
  }
}
