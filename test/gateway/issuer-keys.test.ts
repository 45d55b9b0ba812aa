import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { createClientVerifier } from '../../gateway/src/auth.ts';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { ensureDevKeys } from '../../platform/keys.ts';

const sign = (key: CryptoKey, alg: string, kid?: string) =>
  new SignJWT({ roles: ['finance'] })
    .setProtectedHeader({ alg, ...(kid ? { kid } : {}) })
    .setIssuer('https://idp.example')
    .setAudience('concord')
    .setSubject('fiona')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(key);

/** The real issuers' key sources: a JWKS URL (keys rotate) and a configured PEM key. */
describe('client token keys', () => {
  const servers: Server[] = [];
  afterAll(() => servers.forEach((server) => server.close()));

  it("follows the issuer's JWKS: a key added later is fetched when a token names its kid", async () => {
    const first = await generateKeyPair('RS256', { extractable: true });
    const second = await generateKeyPair('ES256', { extractable: true });
    const published: JWK[] = [{ ...(await exportJWK(first.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }];
    let fetches = 0;
    const jwks = createServer((_req, res) => {
      fetches += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published }));
    });
    servers.push(jwks);
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const address = jwks.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/.well-known/jwks.json`;
    const verify = await createClientVerifier(
      loadGatewayConfig({ AUTH_JWKS_URL: url, AUTH_ISSUER: 'https://idp.example', AUTH_JWKS_COOLDOWN_S: '0' }).auth,
    );

    expect(await verify(`Bearer ${await sign(first.privateKey, 'RS256', 'k1')}`)).toMatchObject({ subject: 'fiona', roles: ['finance'] });
    expect(await verify(`Bearer ${await sign(first.privateKey, 'RS256', 'k1')}`)).toMatchObject({ subject: 'fiona' });
    expect(fetches).toBe(1); // cached

    published.push({ ...(await exportJWK(second.publicKey)), kid: 'k2', alg: 'ES256', use: 'sig' });
    expect(await verify(`Bearer ${await sign(second.privateKey, 'ES256', 'k2')}`)).toMatchObject({ subject: 'fiona' });
    expect(fetches).toBe(2); // an unknown kid fetched the keys again

    const stranger = await generateKeyPair('RS256');
    await expect(verify(`Bearer ${await sign(stranger.privateKey, 'RS256', 'k3')}`)).rejects.toMatchObject({
      extensions: { code: 'UNAUTHENTICATED' },
    });
  });

  it('verifies with a configured PEM key and its pinned algorithm only', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const config = loadGatewayConfig({
      AUTH_PUBLIC_KEY: await exportSPKI(publicKey),
      AUTH_ISSUER: 'https://idp.example',
      AUTH_ALGORITHMS: 'ES256',
    }).auth;
    const verify = await createClientVerifier(config);
    expect(await verify(`Bearer ${await sign(privateKey, 'ES256')}`)).toMatchObject({ roles: ['finance'] });
    // The same public key presented as an HMAC secret (algorithm confusion) is refused.
    const confused = await new SignJWT({ roles: ['integration'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('https://idp.example')
      .setAudience('concord')
      .setSubject('x')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(await exportSPKI(publicKey)));
    await expect(verify(`Bearer ${confused}`)).rejects.toMatchObject({ extensions: { code: 'UNAUTHENTICATED' } });
  });

  it('refuses to run in production on development keys', () => {
    expect(() => loadGatewayConfig({ CONCORD_ENV: 'production' })).toThrow(
      /AUTH_JWKS_URL.*required.*\n.*AUTH_ISSUER.*\n.*INTERNAL_TOKEN_PRIVATE_KEY/s,
    );
  });

  it('npm run token prints a token the embedded default accepts', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'concord-token-'));
    try {
      const run = spawnSync(
        process.execPath,
        ['--import', 'tsx', 'tools/token.ts', '--role', 'portal_customer', '--customer', 'C10007', '--sub', 'pat', '--ttl', '120'],
        {
          env: { ...process.env, DATA_DIR: dataDir },
          encoding: 'utf8',
        },
      );
      expect(run.status).toBe(0);
      const keys = await ensureDevKeys(dataDir);
      const { payload } = await jwtVerify(run.stdout.trim(), keys.issuer.publicKey, { issuer: 'concord-dev', audience: 'concord' });
      expect(payload).toMatchObject({ sub: 'pat', roles: ['portal_customer'], customer: 'C10007' });
      expect(payload.exp! - payload.iat!).toBe(120);
      const refused = spawnSync(process.execPath, ['--import', 'tsx', 'tools/token.ts', '--role', 'portal_customer'], {
        env: { ...process.env, DATA_DIR: dataDir },
        encoding: 'utf8',
      });
      expect(refused.status).toBe(2);
      expect(refused.stderr).toMatch(/--customer/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
