import { GraphQLError } from 'graphql';
import { createRemoteJWKSet, errors, importSPKI, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { ErrorCode } from '../../platform/errors.ts';
import { isRole, type Identity } from '../../platform/identity.ts';
import { unauthenticated } from '../../platform/internal-token.ts';
import type { ClientAuthConfig } from './config.ts';

export type ClientVerifier = (authorization: string | undefined) => Promise<Identity>;

/**
 * Verifies a client's OAuth 2.0 bearer token (a JWT): signature with the issuer's key (its JWKS,
 * cached by jose and fetched again for an unknown `kid`; or a configured public key), the
 * pinned algorithms, issuer, audience, and expiry with a small clock tolerance. A missing or
 * bad token is UNAUTHENTICATED (HTTP 401); a valid token with no Concord role, or a portal
 * token without its customer, is FORBIDDEN (HTTP 403). Either way nothing is executed.
 */
export async function createClientVerifier(config: ClientAuthConfig, devIssuerKey?: CryptoKey): Promise<ClientVerifier> {
  const key = await keyOf(config, devIssuerKey);
  // A client sends the same token with every request until it expires: verified once, the
  // identity is kept until the token's expiry or maximum age (whichever is first), never longer.
  const verified = new LRUCache<string, Identity>({ max: 10_000 });
  return async (authorization) => {
    const token = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(authorization ?? '')?.[1];
    if (!token) throw unauthenticated('send a bearer token in the Authorization header');
    const known = verified.get(token);
    if (known) return known;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
        issuer: config.issuer,
        audience: config.audience,
        algorithms: [...config.algorithms],
        clockTolerance: config.clockToleranceSeconds,
        maxTokenAge: config.maxTokenAgeSeconds,
        requiredClaims: ['exp', 'sub', 'iat'],
      }));
    } catch (error) {
      throw unauthenticated(reasonOf(error));
    }
    // integration is Concord's own service identity: only its configured service clients hold it.
    const roles = claimedRoles(payload[config.rolesClaim]).filter(
      (role) => role !== 'integration' || config.serviceSubjects.includes(payload.sub ?? ''),
    );
    if (roles.length === 0) throw refused('the token carries no Concord role');
    const customer = payload[config.customerClaim];
    const customerId = typeof customer === 'string' && customer !== '' ? customer : null;
    if (roles.includes('portal_customer') && customerId === null) throw refused(`a portal token needs the "${config.customerClaim}" claim`);
    const identity: Identity = Object.freeze({ subject: payload.sub ?? '', roles: Object.freeze(roles) as Identity['roles'], customerId });
    const validUntilMs = Math.min(payload.exp! * 1000, (payload.iat! + config.maxTokenAgeSeconds) * 1000);
    const ttl = validUntilMs - Date.now();
    if (ttl > 1_000) verified.set(token, identity, { ttl });
    return identity;
  };
}

async function keyOf(config: ClientAuthConfig, devIssuerKey: CryptoKey | undefined): Promise<CryptoKey | JWTVerifyGetKey> {
  switch (config.key.kind) {
    case 'jwks':
      return createRemoteJWKSet(new URL(config.key.url), { cooldownDuration: config.jwksCooldownSeconds * 1000, cacheMaxAge: 10 * 60_000 });
    case 'pem': {
      const algorithm = config.algorithms[0];
      if (!algorithm) throw new Error('AUTH_ALGORITHMS is empty');
      return importSPKI(config.key.pem, algorithm);
    }
    case 'dev':
      if (!devIssuerKey) throw new Error('the dev issuer key is missing');
      return devIssuerKey;
  }
}

function claimedRoles(claim: unknown): Identity['roles'] {
  const values = Array.isArray(claim) ? claim : typeof claim === 'string' ? claim.split(/\s+/) : [];
  return [...new Set(values.filter(isRole))];
}

/** Says what was wrong with a token, never echoing the token or its claims. */
function reasonOf(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `the token's "${error.claim}" claim is not accepted`;
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm that is not accepted';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no key of the issuer matches the token';
  return 'the token is not valid';
}

function refused(message: string): GraphQLError {
  return new GraphQLError(`Forbidden: ${message}`, { extensions: { code: ErrorCode.Forbidden, http: { status: 403 } } });
}
