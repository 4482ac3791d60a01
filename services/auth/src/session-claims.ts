// The claims a session carries: ID token claims, userinfo over them, scope-mapping results over both.
import type { ProviderConfig } from '@portcullis/config';
import {
  type CompiledScopeMappings,
  deepMerge,
  ExpressionError,
  evaluateScopeMappings,
  type MappingContext,
} from '@portcullis/expressions';
import { AuthError, AuthErrorCode } from './errors.ts';

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringClaim(claims: Record<string, unknown>, name: string): string {
  const value = claims[name];
  return typeof value === 'string' ? value : '';
}

/**
 * The variables a scope mapping sees, shaped like authentik's `request.user` and `provider`:
 * groups are the string entries of the `groups` claim, attributes come from `ak_proxy.user_attributes`.
 */
export function buildMappingContext(claims: Record<string, unknown>, provider: ProviderConfig): MappingContext {
  const groups = Array.isArray(claims['groups']) ? claims['groups'].filter((g): g is string => typeof g === 'string') : [];
  const akProxy = claims['ak_proxy'];
  const attributes = isPlainRecord(akProxy) && isPlainRecord(akProxy['user_attributes']) ? akProxy['user_attributes'] : {};
  return {
    request: {
      user: {
        username: stringClaim(claims, 'preferred_username'),
        email: stringClaim(claims, 'email'),
        name: stringClaim(claims, 'name'),
        uid: stringClaim(claims, 'sub'),
        groups,
        attributes,
      },
    },
    claims,
    provider: {
      name: provider.name,
      proxyprovider: { internal_host: provider.internal_host ?? '', external_host: provider.external_host },
    },
  };
}

/**
 * Computes a session's claims, at login and again at each refresh: userinfo merged over the ID token claims, then the
 * scope mappings' result deep-merged over that (mappings win; nested objects such as `ak_proxy`
 * merge key by key).
 * @throws AuthError MAPPING_FAILED (500) naming the mapping that failed; no session may be created.
 */
export function computeSessionClaims(
  idTokenClaims: Record<string, unknown>,
  userinfo: Record<string, unknown> | null,
  mappings: CompiledScopeMappings,
  provider: ProviderConfig,
): Record<string, unknown> {
  const claims = userinfo === null ? deepMerge({}, idTokenClaims) : deepMerge(idTokenClaims, userinfo);
  if (mappings.mappings.length === 0) return claims;
  let mapped: Record<string, unknown>;
  try {
    mapped = evaluateScopeMappings(mappings, buildMappingContext(claims, provider));
  } catch (err) {
    if (!(err instanceof ExpressionError)) throw err;
    const name = err.mapping ?? 'unknown';
    throw new AuthError(
      AuthErrorCode.MappingFailed,
      `The scope mapping "${name}" of provider "${provider.name}" failed: ${err.message}. ` +
        'An administrator must fix this mapping; no session was created.',
      { statusCode: 500, title: 'Sign-in configuration error', cause: err },
    );
  }
  return deepMerge(claims, mapped);
}
