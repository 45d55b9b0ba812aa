import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { postGraphQL, startGatewayOver, SUPERGRAPH_PATH } from '../helpers/stack.ts';

const ISSUER = 'https://idp.example';
const supergraph = readFileSync(SUPERGRAPH_PATH, 'utf8');

const sign = (key: KeyObject, alg: string) =>
  new SignJWT({ roles: ['support_agent'] })
    .setProtectedHeader({ alg })
    .setIssuer(ISSUER)
    .setAudience('concord')
    .setSubject('sam')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(key);

/** A gateway verifying client tokens with AUTH_PUBLIC_KEY (a PEM key), served over HTTP. */
async function gatewayWith(env: Record<string, string>) {
  const { auth } = loadGatewayConfig({ AUTH_ISSUER: ISSUER, ...env });
  const started = await startGatewayOver(supergraph, { auth });
  // `__typename` is answered by the gateway itself: what is checked here is the token alone.
  const ask = async (token: string) => postGraphQL(started.gateway.url, '{ __typename }', {}, { authorization: `Bearer ${token}` });
  return { ...started, ask };
}

/** A key pair as an issuer holds it (node KeyObjects: one RSA key signs RS* and PS* alike) and its public PEM. */
function issuerKeys(type: 'ed25519' | 'rsa') {
  const { publicKey, privateKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  return { privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

describe('AUTH_PUBLIC_KEY', () => {
  it('verifies tokens with an Ed25519 key under the default AUTH_ALGORITHMS', async () => {
    const { privateKey, pem } = issuerKeys('ed25519');
    const gateway = await gatewayWith({ AUTH_PUBLIC_KEY: pem });
    try {
      const answer = await gateway.ask(await sign(privateKey, 'EdDSA'));
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ data: { __typename: 'Query' } });
      const stranger = issuerKeys('ed25519');
      expect((await gateway.ask(await sign(stranger.privateKey, 'EdDSA'))).status).toBe(401);
    } finally {
      await gateway.stop();
    }
  });

  it('accepts every algorithm of AUTH_ALGORITHMS the key can verify, and refuses any other', async () => {
    const { privateKey, pem } = issuerKeys('rsa');
    const gateway = await gatewayWith({ AUTH_PUBLIC_KEY: pem, AUTH_ALGORITHMS: 'PS256,RS256' });
    try {
      expect((await gateway.ask(await sign(privateKey, 'PS256'))).status).toBe(200);
      expect((await gateway.ask(await sign(privateKey, 'RS256'))).status).toBe(200);
      const refused = await gateway.ask(await sign(privateKey, 'RS384'));
      expect(refused.status).toBe(401);
      expect(refused.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    } finally {
      await gateway.stop();
    }
    const pinned = await gatewayWith({ AUTH_PUBLIC_KEY: pem, AUTH_ALGORITHMS: 'PS256' });
    try {
      expect((await pinned.ask(await sign(privateKey, 'PS256'))).status).toBe(200);
      expect((await pinned.ask(await sign(privateKey, 'RS256'))).status).toBe(401);
    } finally {
      await pinned.stop();
    }
  });

  it('refuses to start when the key can verify none of AUTH_ALGORITHMS, naming both', async () => {
    const { auth } = loadGatewayConfig({ AUTH_ISSUER: ISSUER, AUTH_PUBLIC_KEY: issuerKeys('ed25519').pem, AUTH_ALGORITHMS: 'RS256,ES256' });
    await expect(startGatewayOver(supergraph, { auth })).rejects.toMatchObject({
      name: 'ConfigError',
      message: expect.stringMatching(/AUTH_PUBLIC_KEY.*Ed25519.*AUTH_ALGORITHMS.*RS256, ES256/s),
    });
  });
});
