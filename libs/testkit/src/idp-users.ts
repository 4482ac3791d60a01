// Users of the development IdP: their shape, the demo accounts, and the stable subject derived from a username.
import { createHash } from 'node:crypto';

/** A user the development IdP can sign in. Passwords are plain text: this IdP is for tests and demos only. */
export interface IdpUser {
  username: string;
  password: string;
  /** Subject identifier; default: {@link subjectFor}(username), stable across runs. */
  sub?: string;
  email: string;
  name: string;
  groups: string[];
  entitlements?: string[];
  /** Emitted as `ak_proxy.user_attributes`, like authentik's proxy scope mapping. */
  attributes?: Record<string, unknown>;
  /**
   * A disabled user cannot sign in, and the IdP no longer knows the account: its refresh tokens are
   * refused (`invalid_grant`) and its access tokens no longer read userinfo. Tests may flip it on a
   * running IdP's `users` entry.
   */
  disabled?: boolean;
}

/**
 * The demo accounts. The passwords are deliberately simple: the demo prints them.
 * alice is an admin with a custom header attribute, bob a plain user, carol belongs to no group.
 */
export const DEMO_USERS: IdpUser[] = [
  {
    username: 'alice',
    password: 'alice-password',
    email: 'alice@example.com',
    name: 'Alice Admin',
    groups: ['admins', 'users'],
    entitlements: ['app-admin'],
    attributes: { additionalHeaders: { 'X-Demo-Team': 'platform' } },
  },
  {
    username: 'bob',
    password: 'bob-password',
    email: 'bob@example.com',
    name: 'Bob User',
    groups: ['users'],
  },
  {
    username: 'carol',
    password: 'carol-password',
    email: 'carol@example.com',
    name: 'Carol Outsider',
    groups: [],
  },
];

/**
 * The default subject of a user: SHA-256 hex of the username, the same shape as authentik's
 * `hashed_user_id` subjects, and stable so tests can compute it without asking the IdP.
 */
export function subjectFor(username: string): string {
  return createHash('sha256').update(username).digest('hex');
}

/** The user's subject: the explicit `sub` when given, otherwise {@link subjectFor}(username). */
export function resolveSubject(user: IdpUser): string {
  return user.sub ?? subjectFor(user.username);
}
