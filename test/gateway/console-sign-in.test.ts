import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadGatewayConfig, type ConsoleSignInConfig } from '../../gateway/src/config.ts';
import { consoleHandler } from '../../gateway/src/console/console.ts';
import type { OverviewSource } from '../../gateway/src/console/overview.ts';
import { ConfigError } from '../../platform/config.ts';

const IDP = {
  AUTH_ISSUER: 'https://login.example.com/realms/concord',
  AUTH_JWKS_URL: 'https://login.example.com/realms/concord/protocol/openid-connect/certs',
};

/** The page's config object (the JSON in #console-config). */
function pageConfig(html: string): Record<string, unknown> {
  const json = /<script id="console-config" type="application\/json">([\s\S]*?)<\/script>/.exec(html)?.[1];
  expect(json).toBeDefined();
  return JSON.parse(json!) as Record<string, unknown>;
}

describe('console sign-in settings', () => {
  it('offers no sign-in at the identity provider without CONSOLE_OIDC_CLIENT_ID', () => {
    expect(loadGatewayConfig({}).consoleSignIn).toBeNull();
    expect(loadGatewayConfig(IDP).consoleSignIn).toBeNull();
  });

  it('signs in at AUTH_ISSUER as the client CONSOLE_OIDC_CLIENT_ID, scope openid unless told, a resource when given', () => {
    expect(loadGatewayConfig({ ...IDP, CONSOLE_OIDC_CLIENT_ID: 'concord-console' }).consoleSignIn).toEqual({
      issuer: IDP.AUTH_ISSUER,
      clientId: 'concord-console',
      scope: 'openid',
      resource: null,
    });
    expect(
      loadGatewayConfig({
        ...IDP,
        CONSOLE_OIDC_CLIENT_ID: 'concord-console',
        CONSOLE_OIDC_SCOPE: 'openid concord.console',
        CONSOLE_OIDC_RESOURCE: 'https://api.concord.example/',
      }).consoleSignIn,
    ).toEqual({
      issuer: IDP.AUTH_ISSUER,
      clientId: 'concord-console',
      scope: 'openid concord.console',
      resource: 'https://api.concord.example/',
    });
  });

  it('refuses a client id without a real identity provider, an http one in production, a bad scope or resource', () => {
    const refused = (env: Record<string, string>, message: RegExp) => {
      expect(() => loadGatewayConfig(env)).toThrow(ConfigError);
      expect(() => loadGatewayConfig(env)).toThrow(message);
    };
    // The development issuer: no identity provider to sign in at.
    refused({ CONSOLE_OIDC_CLIENT_ID: 'concord-console' }, /CONSOLE_OIDC_CLIENT_ID: needs AUTH_ISSUER/);
    refused(
      { CONSOLE_OIDC_CLIENT_ID: 'concord-console', AUTH_ISSUER: 'concord-idp', AUTH_JWKS_URL: IDP.AUTH_JWKS_URL },
      /CONSOLE_OIDC_CLIENT_ID/,
    );
    refused({ CONSOLE_OIDC_CLIENT_ID: 'concord-console', AUTH_ISSUER: IDP.AUTH_ISSUER }, /CONSOLE_OIDC_CLIENT_ID/);
    refused(
      {
        CONCORD_ENV: 'production',
        INTERNAL_TOKEN_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----',
        CONSOLE_OIDC_CLIENT_ID: 'concord-console',
        AUTH_ISSUER: 'http://login.example.com',
        AUTH_JWKS_URL: 'http://login.example.com/jwks',
      },
      /CONSOLE_OIDC_CLIENT_ID: needs AUTH_ISSUER to be the identity provider's URL \(https\)/,
    );
    refused({ ...IDP, CONSOLE_OIDC_CLIENT_ID: 'concord-console', CONSOLE_OIDC_SCOPE: 'openid  "x"' }, /CONSOLE_OIDC_SCOPE/);
    refused({ ...IDP, CONSOLE_OIDC_CLIENT_ID: 'concord-console', CONSOLE_OIDC_RESOURCE: 'concord' }, /CONSOLE_OIDC_RESOURCE/);
    // Off production a development provider over http is fine.
    expect(
      loadGatewayConfig({
        CONSOLE_OIDC_CLIENT_ID: 'concord-console',
        AUTH_ISSUER: 'http://127.0.0.1:8080',
        AUTH_JWKS_URL: 'http://127.0.0.1:8080/jwks',
      }).consoleSignIn?.issuer,
    ).toBe('http://127.0.0.1:8080');
  });
});

describe('console page with sign-in at the identity provider', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    server = undefined;
  });

  const overview: OverviewSource = {
    overview: () => Promise.reject(new Error('not in this test')),
    sample: () => Promise.resolve(),
    stop: () => {},
  };

  /** The console handler alone on a free port; what it does not answer is a 404, as in the gateway. */
  async function serve(signIn: ConsoleSignInConfig | null): Promise<string> {
    const handle = consoleHandler({ verify: () => Promise.reject(new Error('no tokens here')), overview, devSignIn: null, signIn });
    server = createServer((req, res) => {
      void handle(req, res).then((answered) => answered || res.writeHead(404).end());
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('tells the page the provider, client, scope, resource and redirect path, and lets it call the provider (CSP)', async () => {
    const origin = await serve(
      loadGatewayConfig({ ...IDP, CONSOLE_OIDC_CLIENT_ID: 'concord-console', CONSOLE_OIDC_RESOURCE: 'urn:concord:api' }).consoleSignIn,
    );
    for (const path of ['/console', '/console/', '/console/callback', '/console/callback?code=abc&state=xyz']) {
      const response = await fetch(`${origin}${path}`);
      expect(response.status, path).toBe(200);
      const csp = response.headers.get('content-security-policy')!;
      expect(csp.split('; ')).toContain("connect-src 'self' https://login.example.com");
      expect(csp).toContain("form-action 'none'");
      expect(pageConfig(await response.text()).oidc).toEqual({
        issuer: IDP.AUTH_ISSUER,
        clientId: 'concord-console',
        scope: 'openid',
        resource: 'urn:concord:api',
        redirectPath: '/console/callback',
        consolePath: '/console',
      });
    }
    // The sign-in module and oauth4webapi are among the page's files, in its import map.
    const html = await (await fetch(`${origin}/console`)).text();
    const tag = /\/console\/([0-9a-f]{12})\/app\.js/.exec(html)?.[1];
    const importMap = JSON.parse(/<script type="importmap">(.*?)<\/script>/.exec(html)![1]!) as { imports: Record<string, string> };
    expect(importMap.imports.oauth4webapi).toBe(`/console/${tag}/vendor/oauth4webapi.mjs`);
    for (const name of ['sign-in.js', 'vendor/oauth4webapi.mjs']) {
      const response = await fetch(`${origin}/console/${tag}/${name}`);
      expect(response.status, name).toBe(200);
      expect(response.headers.get('content-type'), name).toContain('text/javascript');
    }
    expect(await (await fetch(`${origin}/console/${tag}/vendor/oauth4webapi.mjs`)).text()).toContain(
      'export async function discoveryRequest',
    );
  });

  it('without CONSOLE_OIDC_CLIENT_ID: no provider in the page config or the CSP, and no callback path', async () => {
    const origin = await serve(null);
    const response = await fetch(`${origin}/console`);
    expect(response.headers.get('content-security-policy')!.split('; ')).toContain("connect-src 'self'");
    expect(pageConfig(await response.text()).oidc).toBeNull();
    expect((await fetch(`${origin}/console/callback`)).status).toBe(404);
  });
});
