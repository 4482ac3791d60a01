// Request/reply messages served by the session service (carried by the bus).

/** Subjects of the session service; served in the queue group, so one replica handles each message. */
export const SESSION_SUBJECTS = {
  /** Gateways report which sessions were used, in batches (for idle timeouts). */
  activity: 'portcullis.session.activity',
} as const;

/** A batch of session uses seen by one gateway since its last report. */
export interface ActivityReport {
  entries: Array<{ sessionId: string; provider: string; at: number }>;
}
