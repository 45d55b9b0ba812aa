import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';

/**
 * A real OpenID Connect provider (oidc-provider) on 127.0.0.1 and a free port, as the gateway and
 * the console meet one in production: discovery, JWKS, authorization code with PKCE for public
 * clients, and JWT access tokens for one resource (RFC 8707) whose audience is the API's, with
 * the account's roles in them. Its sign-in page is a minimal one: any listed account signs in
 * by name, no password; Cancel answers access_denied. Consent is granted without asking.
 */
export interface Idp {
  /** The issuer identifier (http://127.0.0.1:<port>): AUTH_ISSUER. */
  readonly issuer: string;
  /** Its JWKS: AUTH_JWKS_URL. */
  readonly jwksUri: string;
  /** The algorithm it signs tokens with: AUTH_ALGORITHMS. */
  readonly algorithm: 'RS256';
  /**
   * Starts answering, with these clients (their redirect URIs are known once the services they
   * return to have started, so the provider is created here, not before). Until then, 503.
   */
  start(clients: readonly ClientMetadata[]): void;
  stop(): Promise<void>;
}

export interface IdpOptions {
  /** Account name → the roles its access tokens carry (an empty list: an account without a Concord role). */
  readonly accounts: Readonly<Record<string, readonly string[]>>;
  /** The one resource indicator it issues access tokens for. */
  readonly resource: string;
  /** The `aud` of those access tokens (the gateway's AUTH_AUDIENCE). */
  readonly audience: string;
  /** The claim that holds the roles (the gateway's AUTH_ROLES_CLAIM). */
  readonly rolesClaim?: string;
}

/** A public client of the provider: authorization code with PKCE, no secret. */
export function publicClient(clientId: string, redirectUri: string): ClientMetadata {
  return {
    client_id: clientId,
    token_endpoint_auth_method: 'none',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  };
}

export async function startIdp(options: IdpOptions): Promise<Idp> {
  const rolesClaim = options.rolesClaim ?? 'roles';
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'test-idp-1' };
  let provider: Provider | undefined;
  let providerCallback: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;

  const server = createServer((req, res) => {
    if (!provider || !providerCallback) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('not started');
      return;
    }
    if (req.url?.startsWith('/interaction/')) {
      interaction(provider, options, req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`interaction failed: ${(error as Error).message}`);
      });
      return;
    }
    providerCallback(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const configuration = (clients: readonly ClientMetadata[]): Configuration => ({
    clients: [...clients],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    findAccount: (_ctx, id) => (Object.hasOwn(options.accounts, id) ? { accountId: id, claims: () => ({ sub: id, name: id }) } : undefined),
    // The roles go into the access token, in the claim the gateway reads them from.
    extraTokenClaims: (_ctx, token) =>
      'accountId' in token && token.accountId ? { [rolesClaim]: [...(options.accounts[token.accountId] ?? [])] } : undefined,
    // Consent is not asked: the grant covers what was requested.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { Grant } = ctx.oidc.provider;
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session!.grantIdFor(ctx.oidc.client!.clientId);
      if (grantId) {
        const existing = await Grant.find(grantId);
        if (existing) return existing;
      }
      const grant = new Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId! });
      grant.addOIDCScope('openid');
      grant.addResourceScope(options.resource, '');
      await grant.save();
      return grant;
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // Browsers may call discovery and the token endpoint from the origins of a public client's redirect URIs.
    clientBasedCORS: (_ctx, origin, client) => (client.redirectUris ?? []).some((uri) => new URL(uri).origin === origin),
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
    pkce: { required: () => true },
    responseTypes: ['code'],
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // The token request names the resource too; without it, the one granted.
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== options.resource) throw new errors.InvalidTarget(`this provider issues no tokens for ${indicator}`);
          return { scope: '', audience: options.audience, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
  });

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    algorithm: 'RS256',
    start(clients) {
      if (provider) throw new Error('the identity provider is already started');
      provider = new Provider(issuer, configuration(clients));
      providerCallback = provider.callback();
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`;

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function formBody(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** The provider's sign-in page: GET /interaction/<uid>; POST …/login with `login`; POST …/abort. */
async function interaction(provider: Provider, options: IdpOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const [, , uid, action] = new URL(req.url!, 'http://idp').pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('not this interaction');
  const show = (status: number, message = '') => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(
      page(
        'Sign in',
        `${message ? `<p role="alert">${escape(message)}</p>` : ''}
        <form method="post" action="/interaction/${uid}/login">
          <label>Account <input name="login" autofocus></label>
          <button type="submit">Sign in</button>
        </form>
        <form method="post" action="/interaction/${uid}/abort"><button type="submit">Cancel</button></form>`,
      ),
    );
  };
  if (req.method === 'GET' && action === undefined) {
    if (details.prompt.name !== 'login') throw new Error(`no page for the prompt ${details.prompt.name}`);
    return show(200);
  }
  if (req.method === 'POST' && action === 'login') {
    const login = (await formBody(req)).get('login') ?? '';
    if (!Object.hasOwn(options.accounts, login)) return show(200, `There is no account ${login}.`);
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }
  if (req.method === 'POST' && action === 'abort') {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'The user cancelled the sign-in' },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  res.writeHead(404).end();
}
