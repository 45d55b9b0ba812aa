import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createInternalSigner, createInternalVerifier, INTERNAL_ISSUER } from '../../platform/internal-token.ts';
import { generateDevKeys, INTERNAL_ALGORITHM } from '../../platform/keys.ts';
import type { Identity } from '../../platform/identity.ts';

const AGENT: Identity = { subject: 'ann@example.com', roles: ['support_agent'], customerId: null };

/**
 * Internal tokens are signed once per identity and subgraph and verified once per token, which
 * must never widen what a token is good for: its audience, its identity and its expiry hold.
 */
describe('internal tokens, reused', () => {
  it('signs one token per identity and subgraph, and another for anything that differs', async () => {
    const keys = await generateDevKeys();
    const sign = createInternalSigner(keys.internal.privateKey);
    const first = await sign(AGENT, 'crm');
    expect(await sign({ ...AGENT }, 'crm')).toBe(first);
    expect(await sign(AGENT, 'erp')).not.toBe(first);
    expect(await sign({ ...AGENT, roles: ['support_lead'] }, 'crm')).not.toBe(first);
    expect(await sign({ ...AGENT, subject: 'bob@example.com' }, 'crm')).not.toBe(first);
    expect(await sign({ subject: 'a@c.example', roles: ['portal_customer'], customerId: 'C2' }, 'crm')).not.toBe(
      await sign({ subject: 'a@c.example', roles: ['portal_customer'], customerId: 'C1' }, 'crm'),
    );
    const verifyCrm = createInternalVerifier(keys.internal.publicKey, 'crm');
    const verifyErp = createInternalVerifier(keys.internal.publicKey, 'erp');
    expect(await verifyCrm(`Bearer ${first}`)).toEqual(AGENT);
    await expect(verifyErp(`Bearer ${first}`)).rejects.toThrow(/not valid for this service/);
  });

  it('remembers a verified token only until it expires', async () => {
    const keys = await generateDevKeys();
    const verify = createInternalVerifier(keys.internal.publicKey, 'crm');
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ roles: ['support_agent'], customer: null })
      .setProtectedHeader({ alg: INTERNAL_ALGORITHM, typ: 'JWT' })
      .setIssuer(INTERNAL_ISSUER)
      .setAudience('crm')
      .setSubject('ann@example.com')
      .setIssuedAt(now)
      .setExpirationTime(now - 3) // inside the 5 s clock tolerance: accepted once, then must not be remembered
      .sign(keys.internal.privateKey);
    expect((await verify(`Bearer ${token}`)).subject).toBe('ann@example.com');
    const longer = await new SignJWT({ roles: ['support_agent'], customer: null })
      .setProtectedHeader({ alg: INTERNAL_ALGORITHM, typ: 'JWT' })
      .setIssuer(INTERNAL_ISSUER)
      .setAudience('crm')
      .setSubject('ann@example.com')
      .setIssuedAt(now)
      .setExpirationTime(now + 2)
      .sign(keys.internal.privateKey);
    expect((await verify(`Bearer ${longer}`)).subject).toBe('ann@example.com');
    await new Promise((resolve) => setTimeout(resolve, 8_000)); // past exp + the 5 s tolerance
    await expect(verify(`Bearer ${token}`)).rejects.toThrow(/not valid/);
    await expect(verify(`Bearer ${longer}`)).rejects.toThrow(/not valid/);
  }, 15_000);
});
