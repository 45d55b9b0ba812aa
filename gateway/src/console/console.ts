/**
 * The operations console: a page the gateway serves at /console in every environment, for the
 * integration_operator role (support_lead and finance may look). No build step: the page's own
 * files are in ./public, its libraries (Preact, htm, uPlot: production dependencies) are read
 * where npm put them and loaded as ES modules through an import map. The page calls /graphql
 * with the user's token for the workflows, and /console/api/overview for the figures.
 *
 * Like ide.ts: exactly the allow-listed files are served, under /console/<tag>/ (the tag names
 * the versions and the content, so each may be cached for good), any other path is a 404.
 *
 * Sign-in at the identity provider (CONSOLE_OIDC_CLIENT_ID): the page is a public OAuth 2.0
 * client of AUTH_ISSUER (authorization code with PKCE, public/sign-in.js with oauth4webapi); the
 * provider sends the browser back to /console/callback, the same page, which exchanges the code.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { GraphQLError } from 'graphql';
import { ErrorCode } from '../../../platform/errors.ts';
import type { Identity, Role } from '../../../platform/identity.ts';
import { fromPackageRoot } from '../../../platform/package-root.ts';
import type { ClientVerifier } from '../auth.ts';
import type { ConsoleSignInConfig } from '../config.ts';
import type { OverviewSource } from './overview.ts';
import { TRACE_ID, type TraceSource } from './traces.ts';
import { escapeHtml, jsonForScript, sendImmutable } from '../static-files.ts';

export const CONSOLE_PATH = '/console';
export const OVERVIEW_PATH = '/console/api/overview';
export const DEV_TOKEN_PATH = '/console/api/dev-token';
/** GET /console/api/traces/<trace id>: one trace from the trace store, for the timeline. */
export const TRACES_PATH = '/console/api/traces';
/** Where the identity provider sends the browser back to after sign-in (the console's redirect URI there). */
export const CALLBACK_PATH = '/console/callback';

/** Who may open the console; only integration_operator may act on workflows (the graph decides that). */
export const CONSOLE_ROLES: readonly Role[] = ['integration_operator', 'support_lead', 'finance'];

/** How long a dev sign-in token lasts, in seconds. */
export const DEV_TOKEN_TTL_SECONDS = 8 * 3600;

/** The page's own files, in gateway/src/console/public/ (read from the package folder, so the same from dist/). */
const PUBLIC_DIR = fromPackageRoot('gateway', 'src', 'console', 'public');

interface ConsoleFile {
  /** Under /console/<tag>/. */
  readonly name: string;
  readonly contentType: string;
  /** A package's file (resolved from its main entry's folder up to the package), or one of ./public. */
  readonly source: { readonly package: string; readonly file: string } | { readonly public: string };
}

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

/** The only files /console/<tag>/ serves. */
const FILES: readonly ConsoleFile[] = [
  { name: 'app.js', contentType: JS, source: { public: 'app.js' } },
  { name: 'plain-words.js', contentType: JS, source: { public: 'plain-words.js' } },
  { name: 'trace.js', contentType: JS, source: { public: 'trace.js' } },
  { name: 'sign-in.js', contentType: JS, source: { public: 'sign-in.js' } },
  { name: 'app.css', contentType: CSS, source: { public: 'app.css' } },
  { name: 'vendor/preact.mjs', contentType: JS, source: { package: 'preact', file: 'dist/preact.module.js' } },
  { name: 'vendor/preact-hooks.mjs', contentType: JS, source: { package: 'preact', file: 'hooks/dist/hooks.module.js' } },
  { name: 'vendor/htm.mjs', contentType: JS, source: { package: 'htm', file: 'dist/htm.module.js' } },
  { name: 'vendor/uplot.mjs', contentType: JS, source: { package: 'uplot', file: 'dist/uPlot.esm.js' } },
  { name: 'vendor/uplot.css', contentType: CSS, source: { package: 'uplot', file: 'dist/uPlot.min.css' } },
  { name: 'vendor/oauth4webapi.mjs', contentType: JS, source: { package: 'oauth4webapi', file: 'build/index.js' } },
];

/** The bare module names the page imports, and the file each is. */
const IMPORTS: Readonly<Record<string, string>> = {
  preact: 'vendor/preact.mjs',
  'preact/hooks': 'vendor/preact-hooks.mjs',
  htm: 'vendor/htm.mjs',
  uplot: 'vendor/uplot.mjs',
  oauth4webapi: 'vendor/oauth4webapi.mjs',
};

/** The packages, with the major version the page is written for. */
const PACKAGES: Readonly<Record<string, number>> = { preact: 10, htm: 3, uplot: 1, oauth4webapi: 3 };

interface Located {
  readonly tag: string;
  readonly byPath: ReadonlyMap<string, ConsoleFile & { readonly path: string }>;
}

const requireHere = createRequire(import.meta.url);
let located: Located | { readonly missing: string } | undefined;

function consoleFiles(): Located | { readonly missing: string } {
  return (located ??= locate());
}

/** The folder of an installed package: up from its main entry to the package.json that names it. */
function packageDir(name: string): { dir: string; version: string } | null {
  let entry: string;
  try {
    entry = requireHere.resolve(name);
  } catch {
    return null;
  }
  for (let dir = dirname(entry); dirname(dir) !== dir; dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (manifest.name === name) return { dir, version: String(manifest.version ?? '') };
    } catch {
      // no package.json here: one folder up
    }
  }
  return null;
}

function locate(): Located | { readonly missing: string } {
  const dirs = new Map<string, string>();
  const hash = createHash('sha256');
  for (const [name, major] of Object.entries(PACKAGES)) {
    const found = packageDir(name);
    if (!found) return { missing: `the package ${name} is not installed` };
    if (Number(found.version.split('.')[0]) !== major) return { missing: `${name} ${major}.x is needed (found ${found.version})` };
    dirs.set(name, found.dir);
    hash.update(`${name}@${found.version} `);
  }
  const byPath = new Map<string, ConsoleFile & { path: string }>();
  const paths = FILES.map((file) => ({
    ...file,
    path: 'package' in file.source ? join(dirs.get(file.source.package)!, file.source.file) : join(PUBLIC_DIR, file.source.public),
  }));
  // The page's own files change the tag too (a new version of app.js gets a new URL).
  for (const file of paths) if ('public' in file.source) hash.update(readFileSync(file.path));
  const tag = hash.digest('hex').slice(0, 12);
  for (const file of paths) byPath.set(`${CONSOLE_PATH}/${tag}/${file.name}`, file);
  return { tag, byPath };
}

export interface ConsoleOptions {
  verify: ClientVerifier;
  overview: OverviewSource;
  /** Signs a token for a role (the development issuer): only when not production and the gateway verifies that issuer's tokens. */
  devSignIn: ((role: Role) => Promise<string>) | null;
  /** Sign-in at the identity provider (CONSOLE_OIDC_CLIENT_ID), or null: not offered. */
  signIn?: ConsoleSignInConfig | null;
  /** Where traces are read (CONSOLE_TRACES_URL); null: the console shows no trace timelines. */
  traces?: TraceSource | null;
  /** The token claim holding the roles (AUTH_ROLES_CLAIM): the page reads who is signed in from it. */
  rolesClaim?: string;
}

/**
 * The `web` handler of http-server.ts for /console and /console/...: the page, its files, the
 * overview and (in development) the dev sign-in. Anything else under /console is not answered
 * here, so it is a 404.
 */
export function consoleHandler(options: ConsoleOptions): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    if (path !== CONSOLE_PATH && !path.startsWith(`${CONSOLE_PATH}/`)) return false;
    // The redirect URI is the same page, only where sign-in at the identity provider is offered.
    if (path === CONSOLE_PATH || path === `${CONSOLE_PATH}/` || (path === CALLBACK_PATH && options.signIn)) {
      sendPage(req, res, consoleFiles(), {
        devSignIn: options.devSignIn !== null,
        signIn: options.signIn ?? null,
        traces: !!options.traces,
        rolesClaim: options.rolesClaim ?? 'roles',
      });
      return true;
    }
    if (path === OVERVIEW_PATH) {
      const identity = await authorize(req, res, options.verify);
      if (!identity) return true;
      sendJson(res, 200, await options.overview.overview());
      return true;
    }
    if (path.startsWith(`${TRACES_PATH}/`)) {
      const identity = await authorize(req, res, options.verify);
      if (!identity) return true;
      const traceId = path.slice(TRACES_PATH.length + 1).toLowerCase();
      if (!TRACE_ID.test(traceId)) {
        sendJson(res, 400, { error: { code: 'BAD_REQUEST', message: 'a trace id is 32 hexadecimal digits, not all zero' } });
        return true;
      }
      if (!options.traces) {
        sendJson(res, 404, {
          error: { code: 'TRACES_NOT_CONFIGURED', message: 'no trace store is configured (CONSOLE_TRACES_URL)' },
        });
        return true;
      }
      const found = await options.traces.trace(traceId);
      if (found.found) sendJson(res, 200, found.trace);
      else sendJson(res, found.status, { error: { code: found.code, message: found.message } });
      return true;
    }
    if (path === DEV_TOKEN_PATH) {
      if (!options.devSignIn) return false;
      const role = new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt)).get('role');
      if (!CONSOLE_ROLES.includes(role as Role)) {
        sendJson(res, 400, { error: { code: 'BAD_REQUEST', message: `role must be one of ${CONSOLE_ROLES.join(', ')}` } });
        return true;
      }
      sendJson(res, 200, { token: await options.devSignIn(role as Role), role, ttlSeconds: DEV_TOKEN_TTL_SECONDS });
      return true;
    }
    const files = consoleFiles();
    if ('missing' in files) return false;
    const file = files.byPath.get(path);
    if (!file) return false;
    await sendFile(req, res, path, file);
    return true;
  };
}

/** The identity of a bearer token holding a console role; otherwise answers 401 or 403 itself and returns null. */
async function authorize(req: IncomingMessage, res: ServerResponse, verify: ClientVerifier): Promise<Identity | null> {
  let identity: Identity;
  try {
    identity = await verify(req.headers.authorization);
  } catch (error) {
    const code = error instanceof GraphQLError ? error.extensions?.code : undefined;
    const status = code === ErrorCode.Forbidden ? 403 : 401;
    sendJson(res, status, {
      error: { code: status === 403 ? 'FORBIDDEN' : 'UNAUTHENTICATED', message: error instanceof Error ? error.message : 'not allowed' },
    });
    return null;
  }
  if (!identity.roles.some((role) => CONSOLE_ROLES.includes(role))) {
    sendJson(res, 403, { error: { code: 'FORBIDDEN', message: `the console is for ${CONSOLE_ROLES.join(', ')}` } });
    return null;
  }
  return identity;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(text),
  });
  res.end(res.req?.method === 'HEAD' ? undefined : text);
}

let template: string | undefined;

/** The registered operations the page sends (schema/operations/ops-console), by name. */
const OPERATIONS = ['ParkedWorkflows', 'ResolveWorkflow', 'WorkflowCounts', 'RecentWorkflows', 'WorkflowTimeline'] as const;
let operations: Record<string, string> | undefined;
function operationDocuments(): Record<string, string> {
  return (operations ??= Object.fromEntries(
    OPERATIONS.map((name) => [name, readFileSync(fromPackageRoot('schema', 'operations', 'ops-console', `${name}.graphql`), 'utf8')]),
  ));
}

/** What the page is told about sign-in at the identity provider (null: not offered). */
function signInForPage(signIn: ConsoleSignInConfig | null) {
  if (!signIn) return null;
  return {
    issuer: signIn.issuer,
    clientId: signIn.clientId,
    scope: signIn.scope,
    resource: signIn.resource,
    redirectPath: CALLBACK_PATH,
    consolePath: CONSOLE_PATH,
  };
}

/** The origin the page may call besides its own: the identity provider's (discovery and token endpoint). */
function identityProviderOrigin(signIn: ConsoleSignInConfig | null): string | null {
  const origin = signIn ? URL.parse(signIn.issuer)?.origin : undefined;
  return origin && origin !== 'null' ? origin : null;
}

function sendPage(
  req: IncomingMessage,
  res: ServerResponse,
  files: Located | { readonly missing: string },
  {
    devSignIn,
    signIn,
    traces,
    rolesClaim,
  }: { devSignIn: boolean; signIn: ConsoleSignInConfig | null; traces: boolean; rolesClaim: string },
): void {
  template ??= readFileSync(join(PUBLIC_DIR, 'index.html'), 'utf8');
  let head = '';
  let body: string;
  let importMap = '';
  if ('missing' in files) {
    body = `<main class="missing"><h1>Concord operations console</h1><p>The console cannot be shown: ${escapeHtml(files.missing)}. Run <code>npm install</code> and start the gateway again.</p></main>`;
  } else {
    const asset = (name: string) => `${CONSOLE_PATH}/${files.tag}/${name}`;
    importMap = JSON.stringify({ imports: Object.fromEntries(Object.entries(IMPORTS).map(([name, file]) => [name, asset(file)])) });
    head = [
      `<link rel="stylesheet" href="${asset('vendor/uplot.css')}" />`,
      `<link rel="stylesheet" href="${asset('app.css')}" />`,
      `<script type="importmap">${importMap}</script>`,
      `<script type="module" src="${asset('app.js')}"></script>`,
    ].join('\n    ');
    const config = {
      devSignIn,
      roles: CONSOLE_ROLES,
      overviewPath: OVERVIEW_PATH,
      devTokenPath: DEV_TOKEN_PATH,
      tracesPath: traces ? TRACES_PATH : null,
      rolesClaim,
      oidc: signInForPage(signIn),
      graphqlPath: '/graphql',
      operations: operationDocuments(),
    };
    body = `<div id="app"><p class="loading">Loading the console…</p></div>
    <script id="console-config" type="application/json">${jsonForScript(config)}</script>`;
  }
  // Only this gateway's own files; the import map is the one inline script, allowed by its hash.
  // The page calls the identity provider too (discovery, token endpoint) when it signs in there;
  // going to its authorization endpoint is a navigation, not limited here.
  const idp = 'missing' in files ? null : identityProviderOrigin(signIn);
  const csp = [
    "default-src 'none'",
    `script-src 'self'${importMap ? ` 'sha256-${createHash('sha256').update(importMap).digest('base64')}'` : ''}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self'${idp ? ` ${idp}` : ''}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const html = template.replace('%HEAD%', head).replace('%BODY%', body);
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-cache',
    'content-security-policy': csp,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'content-length': Buffer.byteLength(html),
  });
  res.end(req.method === 'HEAD' ? undefined : html);
}

async function sendFile(req: IncomingMessage, res: ServerResponse, urlPath: string, file: ConsoleFile & { readonly path: string }) {
  await sendImmutable(req, res, urlPath, file.contentType, () => readFile(file.path));
}
