import { createServer, type IncomingMessage } from 'node:http';
import { exportPKCS8, generateKeyPair, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oauthTokenSource } from '../../platform/oauth.ts';

/** A token endpoint that records the forms it was sent. */
describe('OAuth 2.0 token sources', () => {
  const forms: URLSearchParams[] = [];
  let url = '';
  let status = 200;
  const server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    forms.push(new URLSearchParams(body));
    res
      .writeHead(status, { 'content-type': 'application/json' })
      .end(JSON.stringify(status === 200 ? { access_token: `t${forms.length}`, expires_in: 3600 } : { error: 'invalid_grant' }));
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/token`;
  });
  afterAll(() => server.close());

  it('fetches a client-credentials token once, caches it, and again after invalidate()', async () => {
    forms.length = 0;
    const source = oauthTokenSource(
      {
        kind: 'client_credentials',
        tokenUrl: url,
        clientId: 'concord',
        clientSecret: 's3cret',
        scope: 'https://api.businesscentral.dynamics.com/.default',
      },
      'erp',
    );
    const [a, b] = await Promise.all([source(), source()]);
    expect(a).toBe('t1');
    expect(b).toBe('t1');
    expect(forms).toHaveLength(1);
    expect(Object.fromEntries(forms[0]!)).toMatchObject({
      grant_type: 'client_credentials',
      client_id: 'concord',
      client_secret: 's3cret',
    });
    source.invalidate();
    expect(await source()).toBe('t2');
  });

  it('signs a JWT bearer assertion for Salesforce with the app key', async () => {
    forms.length = 0;
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const source = oauthTokenSource(
      {
        kind: 'jwt_bearer',
        tokenUrl: url,
        clientId: 'connected-app',
        username: 'integration@acme.example',
        audience: 'https://login.salesforce.com',
        privateKeyPem: await exportPKCS8(privateKey),
      },
      'crm',
    );
    await source();
    expect(forms[0]!.get('grant_type')).toBe('urn:ietf:params:oauth:grant-type:jwt-bearer');
    const { payload } = await jwtVerify(forms[0]!.get('assertion')!, publicKey, {
      issuer: 'connected-app',
      audience: 'https://login.salesforce.com',
    });
    expect(payload.sub).toBe('integration@acme.example');
  });

  it('reports a refused grant as the system being unavailable, naming it', async () => {
    status = 400;
    const source = oauthTokenSource({ kind: 'refresh_token', tokenUrl: url, clientId: 'c', refreshToken: 'r' }, 'crm');
    await expect(source()).rejects.toMatchObject({ system: 'crm', message: expect.stringMatching(/answered 400/) });
    status = 200;
  });
});
