// The default OpenTelemetry service.name of a process, from its `--services` argument.

/** `portcullis-gateway` for `--services gateway`, `portcullis` for several roles or other commands. */
export function defaultServiceName(argv: readonly string[]): string {
  const i = argv.indexOf('--services');
  const value = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--services='))?.slice('--services='.length);
  const roles = (value ?? 'all').split(',').map((s) => s.trim());
  return roles.length === 1 && ['gateway', 'auth', 'session'].includes(roles[0]!) ? `portcullis-${roles[0]}` : 'portcullis';
}
