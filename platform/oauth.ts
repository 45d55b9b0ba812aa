import { SignJWT, importPKCS8 } from 'jose';
import { ConnectorError } from './errors.ts';

/** An access token source: cached until shortly before it expires, fetched again after. */
export type TokenSource = () => Promise<string>;

/** How a connector gets its OAuth 2.0 access tokens. */
export type OAuthGrant =
  /** Client credentials (Business Central, server-to-server). */
  | { kind: 'client_credentials'; tokenUrl: string; clientId: string; clientSecret: string; scope?: string | undefined }
  /** JWT bearer (Salesforce server-to-server): an RS256 assertion signed with the app's key. */
  | { kind: 'jwt_bearer'; tokenUrl: string; clientId: string; username: string; audience: string; privateKeyPem: string }
  /** A refresh token held for a user or an integration user. */
  | { kind: 'refresh_token'; tokenUrl: string; clientId: string; clientSecret?: string | undefined; refreshToken: string };

export interface TokenResponse {
  access_token: string;
  expires_in?: number;
  instance_url?: string;
}

/**
 * A token source for a grant: one token request at a time, cached until a minute before its
 * expiry (an hour when the issuer gives none). `invalidate()` drops the cache after a 401, so the
 * next call fetches a fresh token; callers refresh at most once per call, never in a loop.
 */
export function oauthTokenSource(
  grant: OAuthGrant,
  system: string,
  options: { now?: () => number } = {},
): TokenSource & {
  invalidate(): void;
  lastResponse(): TokenResponse | null;
} {
  const now = options.now ?? Date.now;
  let cached: { token: string; until: number } | null = null;
  let inFlight: Promise<string> | null = null;
  let last: TokenResponse | null = null;

  async function fetchToken(): Promise<string> {
    const body = new URLSearchParams(await formOf(grant));
    let response: Response;
    try {
      response = await fetch(grant.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      throw new ConnectorError(system, `token request failed: ${(error as Error).message}`, { cause: error });
    }
    const text = await response.text();
    if (!response.ok) throw new ConnectorError(system, `token request answered ${response.status}: ${text.slice(0, 200)}`);
    const token = JSON.parse(text) as TokenResponse;
    if (!token.access_token) throw new ConnectorError(system, 'token response has no access_token');
    last = token;
    cached = { token: token.access_token, until: now() + Math.max(0, (token.expires_in ?? 3600) - 60) * 1000 };
    return token.access_token;
  }

  const source = async () => {
    if (cached && cached.until > now()) return cached.token;
    inFlight ??= fetchToken().finally(() => (inFlight = null));
    return inFlight;
  };
  return Object.assign(source, {
    invalidate() {
      cached = null;
    },
    lastResponse: () => last,
  });
}

async function formOf(grant: OAuthGrant): Promise<Record<string, string>> {
  switch (grant.kind) {
    case 'client_credentials':
      return {
        grant_type: 'client_credentials',
        client_id: grant.clientId,
        client_secret: grant.clientSecret,
        ...(grant.scope ? { scope: grant.scope } : {}),
      };
    case 'jwt_bearer': {
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'RS256' })
        .setIssuer(grant.clientId)
        .setSubject(grant.username)
        .setAudience(grant.audience)
        .setExpirationTime('3m')
        .sign(await importPKCS8(grant.privateKeyPem, 'RS256'));
      return { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion };
    }
    case 'refresh_token':
      return {
        grant_type: 'refresh_token',
        client_id: grant.clientId,
        refresh_token: grant.refreshToken,
        ...(grant.clientSecret ? { client_secret: grant.clientSecret } : {}),
      };
  }
}
