import { GraphQLError } from 'graphql';
import { SignJWT, jwtVerify, type CryptoKey } from 'jose';
import { ErrorCode } from './errors.ts';
import { isRole, type Identity } from './identity.ts';
import { INTERNAL_ALGORITHM } from './keys.ts';

/** Issuer of the tokens the gateway signs for subgraphs. */
export const INTERNAL_ISSUER = 'concord-gateway';
/** Lifetime of one internal token: long enough for one subgraph call, no longer. */
const TTL_SECONDS = 30;

/**
 * Signs the identity the gateway verified into a short-lived token for one subgraph (the
 * audience), with the request's correlation id.
 */
export function createInternalSigner(privateKey: CryptoKey) {
  return (identity: Identity, audience: string, correlationId: string): Promise<string> =>
    new SignJWT({ roles: identity.roles, customer: identity.customerId, cid: correlationId })
      .setProtectedHeader({ alg: INTERNAL_ALGORITHM, typ: 'JWT' })
      .setIssuer(INTERNAL_ISSUER)
      .setAudience(audience)
      .setSubject(identity.subject)
      .setIssuedAt()
      .setExpirationTime(`${TTL_SECONDS}s`)
      .sign(privateKey);
}

export type InternalVerifier = (authorization: string | undefined) => Promise<Identity>;

/**
 * Verifies the internal token on a subgraph request: signed by the gateway's key, for this
 * subgraph, not expired. Anything else is UNAUTHENTICATED with HTTP 401, before any execution.
 */
export function createInternalVerifier(publicKey: CryptoKey, audience: string): InternalVerifier {
  return async (authorization) => {
    const token = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(authorization ?? '')?.[1];
    if (!token) throw unauthenticated('a gateway-signed bearer token is required');
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
      return { subject: payload.sub ?? '', roles, customerId: customer };
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
