import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { loadGatewayConfig } from '../gateway/src/config.ts';
import { signDevToken } from '../platform/dev-token.ts';
import { isRole, ROLES, type Role } from '../platform/identity.ts';
import { ensureDevKeys } from '../platform/keys.ts';

const HELP = `Usage: npm run token -- --role <role> [--role <role>…] [--customer <id>] [--sub <user>] [--ttl <seconds>]

Prints a bearer token the embedded default gateway accepts, signed with the development issuer
key in the data folder (made at first start). Roles: ${ROLES.join(', ')}.
A portal_customer token needs --customer (a customer number, e.g. C10001).

  TOKEN=$(npm run -s token -- --role support_agent)
  curl -s http://localhost:4000/graphql -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
    -d '{"query":"{ cases(first: 3) { nodes { id subject } } }"}'`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      role: { type: 'string', multiple: true },
      customer: { type: 'string' },
      sub: { type: 'string' },
      ttl: { type: 'string', default: '3600' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const roles = values.role ?? [];
  const unknown = roles.filter((role) => !isRole(role));
  if (roles.length === 0 || unknown.length) {
    console.error(`token: --role must be one of ${ROLES.join(', ')}${unknown.length ? ` (got ${unknown.join(', ')})` : ''}`);
    return 2;
  }
  if (roles.includes('portal_customer') && !values.customer) {
    console.error('token: a portal_customer token needs --customer <customer number>');
    return 2;
  }
  const ttlSeconds = Number(values.ttl);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 7 * 86_400) {
    console.error(`token: --ttl must be whole seconds from 1 to ${7 * 86_400} (got ${values.ttl})`);
    return 2;
  }
  const config = loadGatewayConfig();
  if (config.auth.key.kind !== 'dev') {
    console.error('token: the gateway is configured with a real issuer (AUTH_JWKS_URL or AUTH_PUBLIC_KEY); get a token from it');
    return 2;
  }
  const keys = await ensureDevKeys(config.dataDir);
  const subject = values.sub ?? `${roles[0]}@concord.example`;
  console.log(
    await signDevToken(
      keys.issuer.privateKey,
      { roles: roles as Role[], customer: values.customer, subject, ttlSeconds },
      config.auth.audience,
    ),
  );
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      console.error(`token: ${(error as Error).message}`);
      process.exitCode = 2;
    },
  );
}
