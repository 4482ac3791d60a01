// Public entry of @portcullis/session.
export { createSessionService, type RetryNotice, type RetryPolicy, type SessionService, type SessionServiceDeps } from './app.ts';
export { createSessionUpkeep, type SessionUpkeepDeps, type SessionUpkeepService, type UpkeepLogger } from './upkeep.ts';
export { MAX_REPORT_ENTRIES, parseActivityReport, serveActivityReports, type ActivityReply, type ActivityServerDeps } from './activity-server.ts';
export { idleReason, sweepIdleSessions, type IdleSweepResult, type UpkeepProvider } from './idle-sweeper.ts';
export { changedProviders, reconcileSessions, removedReason, secretChangedReason, issuerChangedReason, type ReconcileResult } from './reconciler.ts';
