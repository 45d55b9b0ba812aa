import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's chromium (test/setup/servers.ts installs it); playwright-core brings no browser of its own. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * What chromium is started with: headless, no sandbox (tests run as root), and none of its
 * background traffic (component updates, sync, field trials, QUIC probes), which would only make
 * refused connections on a machine without internet.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Headless chromium with a fresh profile in a temporary folder, which close() removes. One
 * context (a persistent one: playwright takes the profile folder only that way); open pages with
 * newPage().
 */
export async function launchBrowser(
  options: { viewport?: { width: number; height: number }; timeoutMs?: number } = {},
): Promise<BrowserContext> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'concord-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS],
      viewport: options.viewport ?? { width: 1280, height: 800 },
      timeout: options.timeoutMs ?? 30_000,
    });
  } catch (error) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw error;
  }
  const close = context.close.bind(context);
  let closing: Promise<void> | undefined;
  context.close = (closeOptions) => (closing ??= close(closeOptions).finally(() => rmSync(userDataDir, { recursive: true, force: true })));
  return context;
}

/** True for a URL on this machine: http(s)/ws(s) to 127.0.0.1, localhost or [::1]; data: and blob: URLs never leave the page. */
export function isLocalUrl(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.protocol === 'data:' || parsed.protocol === 'blob:') return true;
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(parsed.protocol)) return false;
  return ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname);
}

/**
 * Aborts every request of the page (or of every page of the context) that would leave the
 * machine, and records its URL in the returned list: a test that expects it empty proves the page
 * works offline.
 */
export async function blockNonLocal(target: Page | BrowserContext): Promise<string[]> {
  const blocked: string[] = [];
  await target.route(
    (url) => !isLocalUrl(url.href),
    (route) => {
      blocked.push(route.request().url());
      return route.abort('internetdisconnected');
    },
  );
  // WebSockets do not go through route(); record and refuse those too.
  await target.routeWebSocket(
    (url) => !isLocalUrl(url.href),
    (ws) => {
      blocked.push(ws.url());
      return ws.close({ code: 1008, reason: 'blocked: not local' });
    },
  );
  return blocked;
}

/**
 * Where a test's screenshot `name` goes: the docs' images (docs/images/<name>) when
 * CONCORD_SCREENSHOTS=docs asks to update them, else a temporary folder, so a test run leaves
 * the working tree as it was.
 */
export function screenshotPath(name: string): string {
  const folder =
    process.env.CONCORD_SCREENSHOTS === 'docs'
      ? new URL('../../docs/images/', import.meta.url).pathname
      : join(tmpdir(), 'concord-screenshots');
  mkdirSync(folder, { recursive: true });
  return join(folder, name);
}
