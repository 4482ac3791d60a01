// Creates or updates the JetStream stream that holds the session event log.
import {
  DiscardPolicy,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  type StreamConfig,
  type StreamInfo,
  StorageType,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusStartError, BusStartErrorCode } from './bus-start-error.ts';
import { errorMessage } from './nats-connection.ts';
import { EVENT_STREAM_SUBJECTS } from './nats-subjects.ts';
import { retryTransient } from './nats-retry.ts';

/** A publish retried with the same event id within this window is recorded once. */
const DUPLICATE_WINDOW_NS = 2 * 60 * 1e9;
/** How long start-up waits for a JetStream meta leader (elected ~2 s after a cluster starts). */
const SETUP_BUDGET_MS = 15_000;

/** What the stream must look like. */
export interface StreamSettings {
  name: string;
  /** null: keep an existing stream's replicas; for a new one, 3 on a cluster of ≥ 3 servers, else 1. */
  replicas: number | null;
  maxAgeSeconds: number;
}

/** Ensures the stream exists with our subjects, limits and de-duplication window; returns its info. */
export async function ensureStream(nc: NatsConnection, settings: StreamSettings): Promise<{ jsm: JetStreamManager; info: StreamInfo }> {
  try {
    // The INFO line says so at once: no point waiting out a meta-leader election that will never come.
    if (nc.info && nc.info.jetstream !== true) throw new Error('the server has JetStream disabled');
    const jsm = await retryTransient(() => jetstreamManager(nc), SETUP_BUDGET_MS);
    const existing = await retryTransient(() => findStream(jsm, settings.name), SETUP_BUDGET_MS);
    if (!existing) {
      const config: Partial<StreamConfig> & { name: string } = {
        name: settings.name,
        subjects: EVENT_STREAM_SUBJECTS,
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        num_replicas: settings.replicas ?? chooseReplicas(nc),
        duplicate_window: duplicateWindowNs(settings.maxAgeSeconds),
        max_age: settings.maxAgeSeconds * 1e9,
      };
      // A concurrent replica may create it first: "already in use" is then answered by the update below.
      const info = await retryTransient(() => jsm.streams.add(config), SETUP_BUDGET_MS).catch(async (err: unknown) => {
        const raced = await findStream(jsm, settings.name).catch(() => null);
        if (raced) return raced;
        throw err;
      });
      return { jsm, info };
    }
    const wanted: StreamConfig = {
      ...existing.config,
      subjects: EVENT_STREAM_SUBJECTS,
      duplicate_window: duplicateWindowNs(settings.maxAgeSeconds),
      max_age: settings.maxAgeSeconds * 1e9,
      num_replicas: settings.replicas ?? existing.config.num_replicas,
    };
    if (sameSettings(existing.config, wanted)) return { jsm, info: existing };
    const info = await retryTransient(() => jsm.streams.update(settings.name, wanted), SETUP_BUDGET_MS);
    return { jsm, info };
  } catch (err) {
    if (err instanceof BusStartError) throw err;
    throw new BusStartError(
      BusStartErrorCode.StreamSetupFailed,
      `cannot create or update the JetStream stream ${settings.name} (${errorMessage(err)}): check that every nats-server runs with JetStream (-js), ` +
        'that a cluster has elected a meta leader, that cluster.nats.replicas is not larger than the cluster, and that the account may manage streams',
      { cause: err },
    );
  }
}

/**
 * What is wrong with limits an operator set on the stream by hand, or null: with `max_msgs`,
 * `max_bytes` or `max_msgs_per_subject` and discard "old", a full stream silently drops its oldest
 * events, sign-outs of sessions still alive among them, and a reader that had not read them yet (a
 * starting gateway, a lagging projection, `sessions rebuild`) never learns of them.
 */
export function riskyStreamLimits(info: StreamInfo): string | null {
  const c = info.config;
  const set = (['max_msgs', 'max_bytes', 'max_msgs_per_subject'] as const).filter((k) => (c[k] ?? -1) > 0);
  if (set.length === 0 || c.discard !== DiscardPolicy.Old) return null;
  return (
    `the JetStream stream ${c.name} has ${set.map((k) => `${k} ${c[k]}`).join(', ')} with discard "old": when it is full, JetStream ` +
    'drops the oldest events, and a sign-out dropped before every gateway and the session projection read it is never applied. ' +
    `Remove the limit (nats stream edit ${c.name} --max-msgs=-1 --max-bytes=-1 --max-msgs-per-subject=-1; the stream keeps events for ` +
    'max_age, the longest session + 1 day) and bound disk with max_file_store, or set --discard new (then a full stream refuses ' +
    'logins and sign-outs with 503 instead)'
  );
}

/** 3 replicas when the server gossips ≥ 3 client URLs (a cluster of ≥ 3 nodes), else 1. */
export function chooseReplicas(nc: NatsConnection): number {
  const urls = new Set(nc.info?.connect_urls ?? []);
  return urls.size >= 3 ? 3 : 1;
}

/** The server refuses a de-duplication window longer than max_age. */
function duplicateWindowNs(maxAgeSeconds: number): number {
  return Math.min(DUPLICATE_WINDOW_NS, maxAgeSeconds * 1e9);
}

async function findStream(jsm: JetStreamManager, name: string): Promise<StreamInfo | null> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof Error && err.name === 'StreamNotFoundError') return null;
    throw err;
  }
}

function sameSettings(a: StreamConfig, b: StreamConfig): boolean {
  return (
    JSON.stringify(a.subjects) === JSON.stringify(b.subjects) &&
    a.duplicate_window === b.duplicate_window &&
    a.max_age === b.max_age &&
    a.num_replicas === b.num_replicas
  );
}
