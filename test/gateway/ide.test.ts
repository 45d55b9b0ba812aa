import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright-core';
import { IDE_PATH, TOKEN_COMMAND, TOKEN_PLACEHOLDER } from '../../gateway/src/ide.ts';
import { blockNonLocal, launchBrowser, screenshotPath } from '../helpers/browser.ts';
import { startGatewayOver, startStack, SUPERGRAPH_PATH, tokenFor, type Stack } from '../helpers/stack.ts';

const SCREENSHOT = screenshotPath('graphql-ide.png');

/** A GET with the path sent as written (fetch would resolve "..", as a browser does, before sending). */
function rawGet(
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const request = http.get({ hostname, port, path, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    request.on('error', reject);
  });
}

const html = (url: string) => fetch(url, { headers: { accept: 'text/html' } });

/**
 * A browser on the development gateway's /graphql gets GraphiQL, served by the gateway itself,
 * and can run a query with a development token with nothing leaving the machine; a production
 * gateway shows no IDE.
 */
describe('the GraphQL IDE', () => {
  let stack: Stack;
  let browser: BrowserContext;
  let tag: string;
  beforeAll(async () => {
    [stack, browser] = await Promise.all([startStack(), launchBrowser()]);
    const page = await (await html(stack.gateway.url)).text();
    tag = new RegExp(`${IDE_PATH}([0-9a-f]+)/graphiql\\.min\\.js`).exec(page)?.[1] ?? '';
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('runs a query with a dev token, offline, in headless chromium', async () => {
    const page = await browser.newPage();
    const blocked = await blockNonLocal(page);
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(String(error)));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });

    const answer = await page.goto(stack.gateway.url);
    expect(answer?.status()).toBe(200);
    expect(answer?.headers()['content-type']).toContain('text/html');
    // The page says how to get a token and where it goes.
    const help = page.locator('.concord-ide-help');
    await expect.poll(() => help.innerText()).toContain(TOKEN_COMMAND);
    expect(await help.innerText()).toContain('{"Authorization": "Bearer <token>"}');

    // GraphiQL is up, its headers editor open and holding the placeholder.
    const headersEditor = page.locator('.graphiql-editor-tool .graphiql-editor').filter({ hasText: 'Authorization' });
    await headersEditor.waitFor({ timeout: 20_000 });
    expect(await headersEditor.innerText()).toContain(TOKEN_PLACEHOLDER);
    // Without a token the page asks for one itself (the schema cannot load yet).
    const result = page.locator('.result-window');
    await expect.poll(() => result.innerText()).toContain('No token yet');

    // A real token pasted over the placeholder: the schema is fetched again with it.
    const token = await tokenFor(stack.keys, 'support_agent');
    const introspected = page.waitForResponse(
      (response) => response.request().method() === 'POST' && (response.request().postData() ?? '').includes('IntrospectionQuery'),
    );
    await headersEditor.locator('.CodeMirror').click();
    await page.keyboard.press('Control+A');
    await page.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${token}` }));
    expect((await introspected).status()).toBe(200);

    // Run the default query (the first cases) and find its answer in the result pane.
    const expected = await stack.query<{ cases: { totalCount: number; nodes: { id: string }[] } }>(
      '{ cases(first: 3) { totalCount nodes { id } } }',
    );
    const firstCase = expected.body.data!.cases.nodes[0]!.id;
    const executed = page.waitForResponse(
      (response) => response.request().method() === 'POST' && (response.request().postData() ?? '').includes('FirstCases'),
    );
    await page.locator('.graphiql-execute-button').click();
    expect((await executed).status()).toBe(200);
    await expect.poll(() => result.innerText(), { timeout: 10_000 }).toContain(`"totalCount": ${expected.body.data!.cases.totalCount}`);
    expect(await result.innerText()).toContain(`"id": "${firstCase}"`);

    await page.screenshot({ path: SCREENSHOT });

    expect(blocked).toEqual([]);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('serves only its own files, cacheable, and refuses any other path under /ide/', async () => {
    expect(tag).toMatch(/^[0-9a-f]{12}$/);
    const url = stack.gateway.url;
    const script = await rawGet(url, `${IDE_PATH}${tag}/graphiql.min.js`, { 'accept-encoding': 'gzip' });
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.headers['content-encoding']).toBe('gzip');
    expect(script.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const css = await fetch(url.replace('/graphql', `${IDE_PATH}${tag}/graphiql.min.css`));
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(await css.text()).toContain('.graphiql-container');
    const again = await rawGet(url, `${IDE_PATH}${tag}/graphiql.min.css`, { 'if-none-match': css.headers.get('etag')! });
    expect(again.status).toBe(304);

    for (const path of [
      '/ide/../package.json',
      '/ide/%2e%2e/package.json',
      `/ide/${tag}/../../package.json`,
      `/ide/${tag}/..%2f..%2fpackage.json`,
      `/ide/${tag}/%2e%2e/%2e%2e/package.json`,
      `/ide/${tag}/graphiql.min.js.map`,
      `/ide/${tag}/`,
      `/ide/${tag}/graphiql.min.js/`,
      '/ide/000000000000/graphiql.min.js',
      '/ide/graphiql.min.js',
      '/ide/',
    ]) {
      const refused = await rawGet(url, path);
      expect({ path, status: refused.status }).toEqual({ path, status: 404 });
      expect(refused.body).not.toContain('"name": "concord"');
    }
  });

  it('is not on a production gateway: no landing page, no /ide/ files', async () => {
    const production = await startGatewayOver(readFileSync(SUPERGRAPH_PATH, 'utf8'), { environment: 'production' });
    try {
      const page = await html(production.gateway.url);
      const text = await page.text();
      expect(page.headers.get('content-type') ?? '').not.toContain('text/html');
      expect(text).not.toContain('GraphiQL');
      expect(text).not.toContain(IDE_PATH);
      expect((await rawGet(production.gateway.url, `${IDE_PATH}${tag}/graphiql.min.js`)).status).toBe(404);
      // It still answers GraphQL.
      expect((await production.post('{ __typename }')).body.data).toEqual({ __typename: 'Query' });
    } finally {
      await production.stop();
    }
  });
});
