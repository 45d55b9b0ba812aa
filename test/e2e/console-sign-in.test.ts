import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page, Request } from 'playwright-core';
import { decodeJwt } from 'jose';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { blockNonLocal, launchBrowser, screenshotPath } from '../helpers/browser.ts';
import { publicClient, startIdp, type Idp } from '../helpers/idp.ts';
import { startStack, type Stack } from '../helpers/stack.ts';

const CLIENT_ID = 'concord-console';
/** The resource the console asks the provider for (RFC 8707); its tokens are for the audience `concord`. */
const RESOURCE = 'https://api.concord.test/';

/**
 * Sign-in to the operations console at a real OpenID Connect provider (oidc-provider), in
 * headless chromium: the console is a public client (authorization code with PKCE), the gateway
 * verifies the provider's JWT access tokens with its JWKS, and no dev sign-in is offered.
 */
describe('operations console sign-in at the identity provider', () => {
  let idp: Idp;
  let stack: Stack;
  let browser: BrowserContext;
  let blocked: string[];
  let origin: string;

  beforeAll(async () => {
    idp = await startIdp({ accounts: { ops: ['integration_operator'], visitor: [] }, resource: RESOURCE, audience: 'concord' });
    // The settings as an operator gives them.
    const settings = loadGatewayConfig({
      AUTH_ISSUER: idp.issuer,
      AUTH_JWKS_URL: idp.jwksUri,
      AUTH_ALGORITHMS: idp.algorithm,
      CONSOLE_OIDC_CLIENT_ID: CLIENT_ID,
      CONSOLE_OIDC_RESOURCE: RESOURCE,
    });
    stack = await startStack({ gateway: { auth: settings.auth, consoleSignIn: settings.consoleSignIn } });
    origin = `http://127.0.0.1:${new URL(stack.gateway.url).port}`;
    idp.start([publicClient(CLIENT_ID, `${origin}/console/callback`)]);
    browser = await launchBrowser({ viewport: { width: 1280, height: 900 } });
    blocked = await blockNonLocal(browser);
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await idp?.stop();
  });

  /** A new tab with no session at the provider, at the console's sign-in screen, sent on to the provider. */
  async function toProvider(): Promise<Page> {
    await browser.clearCookies();
    const page = await browser.newPage();
    await page.goto(`${origin}/console`);
    const button = page.getByTestId('idp-signin-button');
    expect(await button.textContent()).toContain(`Sign in with ${new URL(idp.issuer).host}`);
    // The gateway verifies the provider's tokens only: no dev sign-in.
    expect(await page.getByTestId('dev-signin').count()).toBe(0);
    await button.click();
    await page.waitForURL((url) => url.href.startsWith(`${idp.issuer}/interaction/`));
    return page;
  }

  it('signs an operator in at the provider and back on the console, whose calls the gateway accepts', async () => {
    const requests: { url: string; body: string | null }[] = [];
    const record = (request: Request) => {
      if (request.url().startsWith(idp.issuer)) requests.push({ url: request.url(), body: request.postData() });
    };
    browser.on('request', record);
    const page = await toProvider();
    await page.getByLabel('Account').fill('ops');
    await page.getByRole('button', { name: 'Sign in' }).click();

    await expect.poll(() => page.getByTestId('who').textContent(), { timeout: 15_000 }).toBe('ops · integration_operator');
    // The code left the address bar; the console's page is at /console.
    expect(new URL(page.url()).pathname).toBe('/console');
    expect(new URL(page.url()).search).toBe('');
    const token = (await page.evaluate(() => sessionStorage.getItem('concord.console.token')))!;
    expect(decodeJwt(token)).toMatchObject({
      iss: idp.issuer,
      aud: 'concord',
      sub: 'ops',
      roles: ['integration_operator'],
      client_id: CLIENT_ID,
    });
    expect(await page.evaluate(() => sessionStorage.getItem('concord.console.signin'))).toBeNull();
    browser.off('request', record);

    // The authorization request: a code, with a PKCE S256 challenge, a state and the resource; the
    // token request: the code with its verifier and the resource, and no client secret.
    const authorization = new URL(requests.find((request) => new URL(request.url).pathname === '/auth')!.url).searchParams;
    expect(Object.fromEntries(authorization)).toMatchObject({
      client_id: CLIENT_ID,
      redirect_uri: `${origin}/console/callback`,
      response_type: 'code',
      scope: 'openid',
      code_challenge_method: 'S256',
      resource: RESOURCE,
    });
    expect(authorization.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorization.get('state')).toBeTruthy();
    const exchange = new URLSearchParams(requests.find((request) => new URL(request.url).pathname === '/token')!.body!);
    expect(Object.fromEntries(exchange)).toMatchObject({
      grant_type: 'authorization_code',
      client_id: CLIENT_ID,
      redirect_uri: `${origin}/console/callback`,
      resource: RESOURCE,
    });
    expect(exchange.get('code_verifier')).toMatch(/^[A-Za-z0-9_~.-]{43,128}$/);
    expect(exchange.has('client_secret')).toBe(false);

    // The figures (/console/api/overview) and the workflows (/graphql) with the provider's token.
    await expect.poll(() => page.getByTestId('system-crm').textContent(), { timeout: 15_000 }).toContain('up');
    await expect.poll(() => page.getByTestId('counts').textContent(), { timeout: 15_000 }).toContain('No workflows yet.');
    await expect.poll(() => page.getByTestId('queue').textContent(), { timeout: 15_000 }).toContain('Nothing is parked.');
    expect(await page.locator('.error').count()).toBe(0);
    await page.screenshot({ path: screenshotPath('console-signed-in-at-idp.png'), fullPage: true });

    // Signed out, the sign-in screen offers the provider again.
    await page.getByRole('button', { name: 'Sign out' }).click();
    expect(await page.getByTestId('idp-signin-button').count()).toBe(1);
    await page.close();
    expect(blocked).toEqual([]);
  }, 60_000);

  it('says in plain words when the sign-in is cancelled at the provider', async () => {
    const page = await toProvider();
    await page.getByRole('button', { name: 'Cancel' }).click();
    const error = page.getByTestId('signin-error');
    await expect
      .poll(() => error.textContent(), { timeout: 15_000 })
      .toContain(`${new URL(idp.issuer).host} did not sign you in: the sign-in was cancelled or refused there.`);
    expect(await page.getByTestId('who').count()).toBe(0);
    expect(new URL(page.url()).pathname).toBe('/console');
    expect(await page.evaluate(() => sessionStorage.getItem('concord.console.token'))).toBeNull();
    await page.screenshot({ path: screenshotPath('console-sign-in-cancelled.png'), fullPage: true });
    await page.close();
    expect(blocked).toEqual([]);
  }, 60_000);

  it('says in plain words when the account has no role for the console, and keeps no token', async () => {
    const page = await toProvider();
    await page.getByLabel('Account').fill('visitor');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const error = page.getByTestId('signin-error');
    await expect
      .poll(() => error.textContent(), { timeout: 15_000 })
      .toBe(
        `${new URL(idp.issuer).host} signed you in as visitor, but that account has no role for the console: it needs one of integration_operator, support_lead, finance.`,
      );
    expect(await page.getByTestId('who').count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.getItem('concord.console.token'))).toBeNull();
    // The paste box stays, as the fallback.
    expect(await page.getByTestId('token-input').count()).toBe(1);
    await page.close();
    expect(blocked).toEqual([]);
  }, 60_000);
});
