import { GraphQLError } from 'graphql';
import { SignJWT, jwtVerify, type CryptoKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { ErrorCode } from './errors.ts';
import { isRole, type Identity } from './identity.ts';
import { INTERNAL_ALGORITHM } from './keys.ts';

/** Issuer of the tokens the gateway signs for subgraphs. */
export const INTERNAL_ISSUER = 'concord-gateway';
/** Lifetime of one internal token: short, so a leaked one is soon worthless. */
const TTL_SECONDS = 30;
/** Life a token must have left beyond what the caller needs, for clock skew and the trip to the subgraph. */
const SPARE_LIFE_MS = 5_000;
/** Bytes for the tokens remembered (signed by the gateway, verified by a subgraph): small entries, bounded all the same. */
const TOKEN_CACHE_BYTES = 8 * 1024 * 1024;

/**
 * Signs the identity the gateway verified into a short-lived token for one subgraph (the
 * audience). The correlation id travels in its own header, so the token depends only on the
 * identity and the subgraph: it is signed once and used for every call of that identity to that
 * subgraph while it has more life left than the call needs, instead of once per call.
 *
 * `minLifeMs` is how long the caller needs the token valid (a subgraph call's remaining
 * deadline): a remembered token with less life left than that plus a margin is not handed out,
 * a new one is signed, living long enough for it.
 */
export function createInternalSigner(privateKey: CryptoKey) {
  const signed = new LRUCache<string, { token: Promise<string>; expiresAt: number }>({
    maxSize: TOKEN_CACHE_BYTES,
    sizeCalculation: (_entry, key) => key.length * 2 + 1_024,
  });
  return (identity: Identity, audience: string, minLifeMs = 0): Promise<string> => {
    const key = `${audience}\u0000${identity.subject}\u0000${[...identity.roles].sort().join(',')}\u0000${identity.customerId ?? ''}`;
    const now = Date.now();
    const needed = minLifeMs + SPARE_LIFE_MS;
    const known = signed.get(key);
    if (known && known.expiresAt - now >= needed) return known.token;
    // Whole seconds (exp is in seconds), from the second now falls in: never less life than asked.
    const issuedAt = Math.floor(now / 1000);
    const lifeSeconds = Math.max(TTL_SECONDS, Math.ceil((needed + SPARE_LIFE_MS) / 1000) + 1);
    const expiresAt = (issuedAt + lifeSeconds) * 1000;
    const token = new SignJWT({ roles: identity.roles, customer: identity.customerId })
      .setProtectedHeader({ alg: INTERNAL_ALGORITHM, typ: 'JWT' })
      .setIssuer(INTERNAL_ISSUER)
      .setAudience(audience)
      .setSubject(identity.subject)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + lifeSeconds)
      .sign(privateKey);
    signed.set(key, { token, expiresAt });
    token.catch(() => signed.delete(key));
    return token;
  };
}

export type InternalVerifier = (authorization: string | undefined) => Promise<Identity>;

/**
 * Verifies the internal token on a subgraph request: signed by the gateway's key, for this
 * subgraph, not expired. Anything else is UNAUTHENTICATED with HTTP 401, before any execution.
 */
export function createInternalVerifier(publicKey: CryptoKey, audience: string): InternalVerifier {
  // The gateway reuses a token for the calls of one identity: verified once, it is remembered
  // until it expires, never longer.
  const verified = new LRUCache<string, Identity>({
    maxSize: TOKEN_CACHE_BYTES,
    sizeCalculation: (identity, token) => token.length * 2 + identity.subject.length * 2 + 256,
  });
  return async (authorization) => {
    const token = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(authorization ?? '')?.[1];
    if (!token) throw unauthenticated('a gateway-signed bearer token is required');
    const known = verified.get(token);
    if (known) return known;
    try {
      const { payload } = await jwtVerify(token, publicKey, {
        algorithms: [INTERNAL_ALGORITHM],
        issuer: INTERNAL_ISSUER,
        audience,
        clockTolerance: 5,
        requiredClaims: ['sub', 'exp'],
      });
      const roles = Array.isArray(payload.roles) ? payload.roles.filter(isRole) : [];
      const customer = typeof payload.customer === 'string' ? payload.customer : null;
      const identity: Identity = Object.freeze({
        subject: payload.sub ?? '',
        roles: Object.freeze(roles) as Identity['roles'],
        customerId: customer,
      });
      const ttl = payload.exp! * 1000 - Date.now();
      if (ttl > 1_000) verified.set(token, identity, { ttl });
      return identity;
    } catch {
      throw unauthenticated('the internal token is not valid for this service');
    }
  };
}

/** UNAUTHENTICATED with HTTP status 401: Apollo Server answers it without executing anything. */
export function unauthenticated(message: string): GraphQLError {
  return new GraphQLError(`Unauthenticated: ${message}`, {
    extensions: { code: ErrorCode.Unauthenticated, http: { status: 401 } },
  });
}
