import { SignJWT, type CryptoKey } from 'jose';
import type { Role } from './identity.ts';
import { ensureDevKeys, INTERNAL_ALGORITHM } from './keys.ts';

/** Issuer of the embedded default's dev tokens (npm run token). */
export const DEV_ISSUER = 'concord-dev';

export interface TokenRequest {
  roles: Role[];
  customer?: string | undefined;
  subject: string;
  ttlSeconds: number;
}

/** Signs a development token as the dev issuer (the claims the gateway reads by default). */
export function signDevToken(key: CryptoKey, request: TokenRequest, audience = 'concord'): Promise<string> {
  return new SignJWT({ roles: request.roles, ...(request.customer ? { customer: request.customer } : {}) })
    .setProtectedHeader({ alg: INTERNAL_ALGORITHM, typ: 'JWT' })
    .setIssuer(DEV_ISSUER)
    .setAudience(audience)
    .setSubject(request.subject)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + request.ttlSeconds)
    .sign(key);
}

/**
 * Bearer tokens for a service's own `integration` identity on the embedded default, signed with
 * the data folder's dev issuer key: ten minutes each, a new one a minute before the last expires.
 */
export function devServiceTokens(dataDir: string, subject: string): () => Promise<string> {
  let key: CryptoKey | undefined;
  let cached: { token: string; until: number } | undefined;
  return async () => {
    if (cached && cached.until > Date.now()) return cached.token;
    key ??= (await ensureDevKeys(dataDir)).issuer.privateKey;
    const token = await signDevToken(key, { roles: ['integration'], subject, ttlSeconds: 600 });
    cached = { token, until: Date.now() + 540_000 };
    return token;
  };
}
