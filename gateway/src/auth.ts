import { createPublicKey, type KeyObject } from 'node:crypto';
import { GraphQLError } from 'graphql';
import { createRemoteJWKSet, errors, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { ConfigError } from '../../platform/config.ts';
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
  const { key, algorithms } = keyOf(config, devIssuerKey);
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
        algorithms,
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

function keyOf(
  config: ClientAuthConfig,
  devIssuerKey: CryptoKey | undefined,
): { key: CryptoKey | KeyObject | JWTVerifyGetKey; algorithms: string[] } {
  switch (config.key.kind) {
    case 'jwks':
      return {
        key: createRemoteJWKSet(new URL(config.key.url), { cooldownDuration: config.jwksCooldownSeconds * 1000, cacheMaxAge: 10 * 60_000 }),
        algorithms: [...config.algorithms],
      };
    case 'pem':
      return pemKeyOf(config.key.pem, config.algorithms);
    case 'dev':
      if (!devIssuerKey) throw new Error('the dev issuer key is missing');
      return { key: devIssuerKey, algorithms: [...config.algorithms] };
  }
}

/**
 * A PEM public key, not bound to one algorithm: jose checks each token's `alg` against the key's
 * type, and only the algorithms of AUTH_ALGORITHMS this key can verify are accepted (an RSA key
 * under `RS256,PS256` verifies both; an Ed25519 key EdDSA). A key that can verify none of them
 * is a configuration error at start, not a gateway that refuses every token.
 */
function pemKeyOf(pem: string, configured: readonly string[]): { key: KeyObject; algorithms: string[] } {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  AUTH_PUBLIC_KEY: not a readable PEM public key (${(error as Error).message})`);
  }
  const usable = algorithmsOf(key);
  const algorithms = configured.filter((algorithm) => usable.includes(algorithm));
  if (algorithms.length === 0) {
    throw new ConfigError(
      `Invalid configuration:\n  AUTH_PUBLIC_KEY: an ${keyTypeName(key)} key verifies ${usable.join(', ') || 'no JWS algorithm'}, ` +
        `none of AUTH_ALGORITHMS (${configured.join(', ')})`,
    );
  }
  return { key, algorithms };
}

/** Node's names of the curves, and the one algorithm each verifies. */
const EC_ALGORITHMS: Readonly<Record<string, string[]>> = { prime256v1: ['ES256'], secp384r1: ['ES384'], secp521r1: ['ES512'] };

/** The JWS algorithms a public key of this type (and curve) can verify. */
function algorithmsOf(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec':
      return EC_ALGORITHMS[String(key.asymmetricKeyDetails?.namedCurve)] ?? [];
    case 'ed25519':
      return ['EdDSA'];
    default:
      return [];
  }
}

function keyTypeName(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return 'Ed25519';
  if (type === 'ec') return `EC (${String(key.asymmetricKeyDetails?.namedCurve)})`;
  return (type ?? 'unknown').toUpperCase();
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
