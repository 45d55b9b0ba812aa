/**
 * The GraphQL IDE of a development gateway: GraphiQL on GET /graphql (Accept: text/html), its
 * files served by the gateway itself from node_modules under /ide/, so it works with no internet
 * (Apollo's default landing page, Apollo Sandbox, loads from a CDN).
 *
 * Why graphiql 3.x (3.8) with React 18: graphiql 3 ships a whole browser bundle (graphiql.min.js,
 * UMD, with graphql-js, CodeMirror and the toolkit inside, and graphiql.min.css with its fonts
 * inlined) that needs nothing but React's UMD builds, and React 18 is the last React that has
 * them (react/umd, react-dom/umd). graphiql 4 still ships such a bundle but deprecates it, and 5
 * ships only ES modules and Monaco workers, which would need a bundler or an import map over
 * many files. So no build step: the files are read where npm put them.
 *
 * graphiql, react and react-dom are development dependencies: this module never imports them,
 * it only resolves their files when the page is first asked for, and a gateway installed
 * without them (npm ci --omit=dev) starts as usual and shows a page saying how to get them. A
 * production gateway (CONCORD_ENV=production) has no IDE at all: server.ts disables the landing
 * page and gateway.ts serves no /ide/ files.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { ROLES } from '../../platform/identity.ts';
import { escapeHtml, jsonForScript, sendImmutable } from './static-files.ts';

/** Where the IDE's files are served; each file's URL carries a tag of the versions (see ideFiles). */
export const IDE_PATH = '/ide/';

/** What the Authorization header holds until a token is pasted over it. */
export const TOKEN_PLACEHOLDER = 'Bearer <token>';

/** The command that prints a development token (tools/token.ts). */
export const TOKEN_COMMAND = 'npm run -s token -- --role support_agent';

const DEFAULT_QUERY = `# Needs a token in Headers (see above). Run: Ctrl-Enter.
query FirstCases {
  cases(first: 3) {
    totalCount
    nodes {
      id
      subject
      status
    }
  }
}
`;

/**
 * The page's own script (served as /ide/<tag>/start.js, so the page needs no inline script):
 * GraphiQL with a fetcher that answers a request without a token itself (the gateway would only
 * say 401), the headers editor open and prefilled, and the schema fetched again once a token is
 * pasted, so the docs and autocompletion follow the token's rights.
 */
const START_SCRIPT = `(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('concord-ide-config').textContent);
  var url = location.origin + location.pathname;
  var send = GraphiQL.createFetcher({ url: url });
  function authorizationOf(headers) {
    for (var name in headers) if (name.toLowerCase() === 'authorization') return String(headers[name]).trim();
    return '';
  }
  function parsedHeaders(text) {
    try {
      var value = JSON.parse(text || '{}');
      return value && typeof value === 'object' ? value : {};
    } catch (error) {
      return null;
    }
  }
  function noToken(authorization) {
    return authorization === '' || authorization === config.placeholder || !/^Bearer \\S+$/i.test(authorization);
  }
  function fetcher(params, options) {
    var authorization = authorizationOf((options && options.headers) || {});
    if (noToken(authorization)) return Promise.resolve({ errors: [{ message: config.noTokenMessage }] });
    return send(params, options);
  }
  function App() {
    // A new fetcher makes GraphiQL introspect again (with the headers as they are then).
    var state = React.useState(function () { return fetcher.bind(null); });
    var setFetcher = state[1];
    var introspectedWith = React.useRef('');
    var timer = React.useRef(0);
    function onEditHeaders(text) {
      clearTimeout(timer.current);
      timer.current = setTimeout(function () {
        var headers = parsedHeaders(text);
        if (!headers) return;
        var authorization = authorizationOf(headers);
        if (noToken(authorization) || authorization === introspectedWith.current) return;
        introspectedWith.current = authorization;
        setFetcher(function () { return fetcher.bind(null); });
      }, 400);
    }
    return React.createElement(GraphiQL, {
      fetcher: state[0],
      defaultQuery: config.defaultQuery,
      defaultHeaders: config.defaultHeaders,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
      onEditHeaders: onEditHeaders,
    });
  }
  ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(App));
})();
`;

interface IdeFile {
  /** Under IDE_PATH/<tag>/. */
  readonly name: string;
  readonly contentType: string;
  /** A package's file (resolved in node_modules), or the text itself. */
  readonly source: { readonly package: string; readonly file: string } | { readonly text: string };
}

/** The only files /ide/ serves. */
const FILES: readonly IdeFile[] = [
  { name: 'graphiql.min.css', contentType: 'text/css; charset=utf-8', source: { package: 'graphiql', file: 'graphiql.min.css' } },
  {
    name: 'react.production.min.js',
    contentType: 'text/javascript; charset=utf-8',
    source: { package: 'react', file: 'umd/react.production.min.js' },
  },
  {
    name: 'react-dom.production.min.js',
    contentType: 'text/javascript; charset=utf-8',
    source: { package: 'react-dom', file: 'umd/react-dom.production.min.js' },
  },
  { name: 'graphiql.min.js', contentType: 'text/javascript; charset=utf-8', source: { package: 'graphiql', file: 'graphiql.min.js' } },
  { name: 'start.js', contentType: 'text/javascript; charset=utf-8', source: { text: START_SCRIPT } },
];

/** The packages the IDE needs, with the major version its page is written for. */
const PACKAGES: Readonly<Record<string, number>> = { graphiql: 3, react: 18, 'react-dom': 18 };

interface IdeFiles {
  /** Names the versions and the page script: a changed file gets a new URL, so each may be cached for good. */
  readonly tag: string;
  /** Full URL path → file, for exactly the files above. */
  readonly byPath: ReadonlyMap<string, IdeFile & { readonly path: string | null }>;
}

const requireHere = createRequire(import.meta.url);

/** Where the IDE's packages are, or why they cannot be used. Looked up once. */
let located: IdeFiles | { readonly missing: string } | undefined;

export function ideFiles(): IdeFiles | { readonly missing: string } {
  return (located ??= locate());
}

function locate(): IdeFiles | { readonly missing: string } {
  const dirs = new Map<string, string>();
  const versions: string[] = [];
  for (const [name, major] of Object.entries(PACKAGES)) {
    let manifestPath: string;
    try {
      manifestPath = requireHere.resolve(`${name}/package.json`);
    } catch {
      return { missing: `the package ${name} is not installed` };
    }
    const version = String((requireHere(manifestPath) as { version?: unknown }).version ?? '');
    if (Number(version.split('.')[0]) !== major) return { missing: `${name} ${major}.x is needed (found ${version || 'no version'})` };
    dirs.set(name, dirname(manifestPath));
    versions.push(`${name}@${version}`);
  }
  const tag = createHash('sha256').update(versions.join(' ')).update(START_SCRIPT).digest('hex').slice(0, 12);
  const byPath = new Map<string, IdeFile & { path: string | null }>();
  for (const file of FILES)
    byPath.set(`${IDE_PATH}${tag}/${file.name}`, {
      ...file,
      path: 'package' in file.source ? join(dirs.get(file.source.package)!, file.source.file) : null,
    });
  return { tag, byPath };
}

/**
 * The landing page Apollo Server shows a browser on GET /graphql: GraphiQL over this gateway,
 * with how to get a development token and where to put it.
 */
export function ideLandingPage<TContext extends BaseContext>(): ApolloServerPlugin<TContext> {
  return {
    async serverWillStart() {
      return {
        async renderLandingPage() {
          return { html: async () => idePage(ideFiles()) };
        },
      };
    },
  };
}

function idePage(files: IdeFiles | { readonly missing: string }): string {
  const otherRoles = ROLES.filter((role) => role !== 'support_agent').map((role) => `<code>${role}</code>`);
  const help = `
    <ol>
      <li>Get a token: run <code>${TOKEN_COMMAND}</code> in the repository (it prints one from the development issuer, valid
        for an hour; other roles: ${otherRoles.join(', ')}; <code>portal_customer</code> also needs <code>--customer C10001</code>).</li>
      <li>Paste it in <b>Headers</b>, below the query editor, in place of <code>&lt;token&gt;</code>:
        <code>{"Authorization": "Bearer &lt;token&gt;"}</code>. The schema (docs, completion) then loads; run with Ctrl-Enter.</li>
    </ol>
    <p>With a real issuer (AUTH_JWKS_URL or AUTH_PUBLIC_KEY) the token comes from that issuer instead.</p>`;
  if ('missing' in files)
    return page(
      '',
      `<main class="missing"><h1>Concord GraphQL IDE</h1><p>GraphiQL cannot be shown: ${escapeHtml(files.missing)}. It is a
      development dependency: run <code>npm install</code> in the repository (not <code>--omit=dev</code>) and start the gateway
      again.</p>${help}<p>Until then, send requests with curl (see <code>npm run token -- --help</code>).</p></main>`,
    );
  const asset = (name: string) => `${IDE_PATH}${files.tag}/${name}`;
  const config = {
    placeholder: TOKEN_PLACEHOLDER,
    defaultHeaders: JSON.stringify({ Authorization: TOKEN_PLACEHOLDER }, null, 2),
    defaultQuery: DEFAULT_QUERY,
    noTokenMessage: `No token yet: run \`${TOKEN_COMMAND}\` and paste {"Authorization": "Bearer <the token>"} into Headers (below the query).`,
  };
  return page(
    `<link rel="stylesheet" href="${asset('graphiql.min.css')}" />`,
    `<header class="concord-ide-help">
      <h1>Concord GraphQL IDE <small>development only</small></h1>${help}
    </header>
    <div id="graphiql"><p class="loading">Loading GraphiQL from ${IDE_PATH}…</p></div>
    <script id="concord-ide-config" type="application/json">${jsonForScript(config)}</script>
    ${FILES.filter((file) => file.name.endsWith('.js'))
      .map((file) => `<script src="${asset(file.name)}"></script>`)
      .join('\n    ')}`,
  );
}

function page(head: string, body: string): string {
  // Only this gateway's own files: a page that asked anything of another host would fail offline.
  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta http-equiv="Content-Security-Policy" content="${csp}" />
    <meta name="robots" content="noindex" />
    <title>Concord GraphQL IDE</title>
    ${head}
    <style>
      html, body { height: 100%; margin: 0; }
      body { display: flex; flex-direction: column; font-family: system-ui, sans-serif; }
      .concord-ide-help { padding: 6px 16px; border-bottom: 1px solid #ddd; background: #f7f8fa; font-size: 13px; line-height: 1.45; }
      .concord-ide-help h1 { font-size: 15px; margin: 2px 0; }
      .concord-ide-help h1 small { font-weight: normal; color: #666; }
      .concord-ide-help p { margin: 2px 0 4px; }
      .concord-ide-help ol { margin: 2px 0; padding-left: 20px; }
      code { font-family: ui-monospace, monospace; background: #eceef2; padding: 0 3px; border-radius: 3px; }
      #graphiql { flex: 1; min-height: 0; }
      .loading, .missing { padding: 16px; }
    </style>
  </head>
  <body>
    ${body}
  </body>
</html>
`;
}

/**
 * The `web` handler of http-server.ts for the IDE's files: exactly the allow-listed files
 * under /ide/<tag>/ (any other path, a traversal among them, is not answered here, so it is a
 * 404), each kept in memory after its first read, immutable (its URL changes with its content),
 * gzipped when the browser takes that.
 */
export function ideAssets(): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const url = req.url ?? '/';
    if (!url.startsWith(IDE_PATH)) return false;
    const files = ideFiles();
    if ('missing' in files) return false;
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    const file = files.byPath.get(path);
    if (!file) return false;
    await sendImmutable(req, res, path, file.contentType, async () =>
      'text' in file.source ? Buffer.from(file.source.text) : readFile(file.path!),
    );
    return true;
  };
}
