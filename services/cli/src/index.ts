// Public entry of @portcullis/cli: start a Portcullis process programmatically (the demo and system tests use it).
export { startPortcullis, StartupError, type ConfigReload, type RunningPortcullis } from './start-portcullis.ts';
export { parseRoles, serviceName, ROLES, type Role } from './roles.ts';
export { VERSION, META_VERSION } from './version.ts';
export { maxSessionSeconds, streamMaxAgeSeconds } from './session-lifetimes.ts';
export { runSessionsCommand, SESSIONS_USAGE, type CommandOutput } from './sessions-command.ts';
export { rebuildProjection, REBUILD_TTL_MS, type RebuildOptions, type RebuildResult, type RebuildStore } from './sessions-rebuild.ts';
export { revokeSessions, formatRevokeReport, PRESENCE_WARMUP_MS, type RevokeDeps, type RevokeResult, type RevokeTarget } from './sessions-revoke.ts';
export { summarizeSession, formatSessionsJson, formatSessionsTable, type SessionSummary } from './sessions-list.ts';
