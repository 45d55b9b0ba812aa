import { z } from 'zod';
import { httpUrl } from './config.ts';
import { devServiceTokens } from './dev-token.ts';
import { required, tokenSourceOf, type TokenConfig } from './vendor-config.ts';

/**
 * The graph a Concord service calls as its own `integration` identity, and how it gets that
 * identity's tokens: a fixed token, or client credentials at the issuer.
 */
export function serviceIdentityEnvSchema() {
  return z.object({
    GATEWAY_URL: httpUrl
      .default('http://localhost:4000/graphql')
      .describe("The graph the process service calls as its own `integration` identity: it reaches every system's API through it."),
    SERVICE_TOKEN: z
      .string()
      .min(20, 'must be a bearer token')
      .optional()
      .describe("A fixed token for the process service's own `integration` identity."),
    SERVICE_TOKEN_URL: httpUrl.optional().meta({
      description: "The issuer's token endpoint, where the service gets its identity's tokens by client credentials.",
      defaultText: 'signed with the development key (development only)',
    }),
    SERVICE_CLIENT_ID: z
      .string()
      .optional()
      .describe("The service's client at the issuer (a subject in the gateway's `AUTH_SERVICE_SUBJECTS`)."),
    SERVICE_CLIENT_SECRET: z.string().optional().describe('Its client secret.'),
    SERVICE_SCOPE: z.string().optional().describe('The scope asked for with client credentials, if the issuer wants one.'),
  });
}

type IdentityVars = z.infer<ReturnType<typeof serviceIdentityEnvSchema>>;

/**
 * How the identity gets its tokens: a fixed token, or client credentials at the issuer; null:
 * signed with the development key, which production refuses.
 */
export function serviceTokenConfigOf(vars: IdentityVars, production: boolean): TokenConfig | null {
  if (vars.SERVICE_TOKEN) return { kind: 'static', token: vars.SERVICE_TOKEN };
  if (vars.SERVICE_TOKEN_URL || vars.SERVICE_CLIENT_ID) {
    return {
      kind: 'client_credentials',
      tokenUrl: required(vars.SERVICE_TOKEN_URL, 'SERVICE_TOKEN_URL', "with SERVICE_CLIENT_ID (the issuer's token endpoint)"),
      clientId: required(vars.SERVICE_CLIENT_ID, 'SERVICE_CLIENT_ID', 'with SERVICE_TOKEN_URL'),
      clientSecret: required(vars.SERVICE_CLIENT_SECRET, 'SERVICE_CLIENT_SECRET', 'with SERVICE_CLIENT_ID'),
      scope: vars.SERVICE_SCOPE,
    };
  }
  if (production)
    required(
      undefined,
      'SERVICE_CLIENT_ID',
      'when CONCORD_ENV=production (with SERVICE_TOKEN_URL and SERVICE_CLIENT_SECRET), or SERVICE_TOKEN',
    );
  return null;
}

/** The identity's bearer tokens: from its configuration, or signed as `subject` with the data folder's dev key. */
export function serviceTokens(config: TokenConfig | null, dataDir: string, subject: string): () => Promise<string> {
  return config ? tokenSourceOf(config, 'gateway') : devServiceTokens(dataDir, subject);
}
