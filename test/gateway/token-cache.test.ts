import { describe, expect, it } from 'vitest';
import { createClientVerifier } from '../../gateway/src/auth.ts';
import { gatewayConfig } from '../helpers/stack.ts';
import { generateDevKeys } from '../../platform/keys.ts';
import { signDevToken } from '../../platform/dev-token.ts';

/**
 * The gateway verifies a client's token once and remembers the identity, but never past the
 * token's own validity: an expired token is refused even if it was accepted a moment before.
 */
describe('client token verification, remembered', () => {
  it('accepts a token again without changing who it is, and refuses it once it has expired', async () => {
    const keys = await generateDevKeys();
    const config = { ...gatewayConfig().auth, clockToleranceSeconds: 0 };
    const verify = await createClientVerifier(config, keys.issuer.publicKey);
    const token = await signDevToken(keys.issuer.privateKey, { roles: ['support_agent'], subject: 'ann@example.com', ttlSeconds: 2 });
    const first = await verify(`Bearer ${token}`);
    expect(await verify(`Bearer ${token}`)).toEqual(first);
    expect(first).toEqual({ subject: 'ann@example.com', roles: ['support_agent'], customerId: null });

    const other = await signDevToken(keys.issuer.privateKey, { roles: ['finance'], subject: 'fred@example.com', ttlSeconds: 60 });
    expect((await verify(`Bearer ${other}`)).roles).toEqual(['finance']);

    await new Promise((resolve) => setTimeout(resolve, 2_100));
    await expect(verify(`Bearer ${token}`)).rejects.toThrow(/expired/);
  });
});
