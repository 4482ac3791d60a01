// Which services a process runs (`--services`): parsing and the service.name per role set.

export const ROLES = ['gateway', 'auth', 'session'] as const;
export type Role = (typeof ROLES)[number];

/** Parses `all` or a comma list; returns the problem text instead of throwing. */
export function parseRoles(value: string | undefined): { roles: Set<Role> } | { error: string } {
  if (value === undefined || value.trim() === '' || value.trim() === 'all') return { roles: new Set(ROLES) };
  const roles = new Set<Role>();
  for (const part of value.split(',').map((s) => s.trim())) {
    if (!(ROLES as readonly string[]).includes(part)) {
      return { error: `--services: unknown service "${part}" — use "all" or a comma list of ${ROLES.join(', ')}` };
    }
    roles.add(part as Role);
  }
  return { roles };
}

/** `portcullis-gateway` for one role, `portcullis` for several. */
export function serviceName(roles: ReadonlySet<Role>): string {
  return roles.size === 1 ? `portcullis-${[...roles][0]}` : 'portcullis';
}
