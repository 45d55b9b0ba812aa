import { SignJWT, UnsecuredJWT, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInternalSigner } from '../../platform/internal-token.ts';
import type { Identity } from '../../platform/identity.ts';
import { callsBetween, connectorCalls, operation, postGraphQL, startStack, type Stack } from '../helpers/stack.ts';
import { ownRecords, type OwnRecords } from './fixtures.ts';

const sha256 = async (text: string) => Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))).toString('hex');

describe('bypass attempts', () => {
  let stack: Stack;
  let mine: OwnRecords;
  let theirs: OwnRecords;
  const logLines: string[] = [];
  beforeAll(async () => {
    stack = await startStack({ logLines });
    mine = ownRecords(stack.dbs);
    theirs = ownRecords(stack.dbs, { notOf: mine.customerId });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const portal = () => ({ role: 'portal_customer' as const, customer: mine.customerId });
  const portalIdentity = (): Identity => ({ subject: 'portal-user', roles: ['portal_customer'], customerId: mine.customerId });

  describe('calling a subgraph directly', () => {
    const entities = (id: string) => ({
      query: 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Case { id subject } } }',
      variables: { r: [{ __typename: 'Case', id }] },
    });
    const post = (authorization: string | undefined, body: { query: string; variables?: unknown }, extra: Record<string, string> = {}) =>
      fetch(stack.support.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}), ...extra },
        body: JSON.stringify(body),
      }).then(async (response) => ({ status: response.status, text: await response.text() }));

    type TokenCase = [name: string, token: () => Promise<string | undefined>, headers?: Record<string, string>];
    it.each<TokenCase>([
      ['no token', async () => undefined],
      ['a forged identity header and no token', async () => undefined, { 'x-concord-roles': 'integration', 'x-user': 'admin' }],
      ['the client token meant for the gateway', async () => stack.bearer('integration')],
      [
        'an expired internal token',
        async () =>
          `Bearer ${await new SignJWT({ roles: ['integration'] })
            .setProtectedHeader({ alg: 'EdDSA' })
            .setIssuer('concord-gateway')
            .setAudience('support')
            .setSubject('x')
            .setIssuedAt(Math.floor(Date.now() / 1000) - 600)
            .setExpirationTime(Math.floor(Date.now() / 1000) - 300)
            .sign(stack.keys.internal.privateKey)}`,
      ],
      [
        'a token for another subgraph',
        async () => `Bearer ${await createInternalSigner(stack.keys.internal.privateKey)(portalIdentity(), 'erp')}`,
      ],
      [
        'an unsigned token (alg: none)',
        async () =>
          `Bearer ${new UnsecuredJWT({ roles: ['integration'] }).setIssuer('concord-gateway').setAudience('support').setSubject('x').setExpirationTime('1m').encode()}`,
      ],
      [
        'a token signed with another key',
        async () =>
          `Bearer ${await createInternalSigner((await generateKeyPair('EdDSA')).privateKey)({ subject: 'x', roles: ['integration'], customerId: null }, 'support')}`,
      ],
    ])('refuses %s with 401 before executing anything (_entities and _service)', async (_name, token, extra = {}) => {
      const authorization = await token();
      const before = await connectorCalls(stack.support);
      for (const body of [entities(mine.caseId), { query: '{ _service { sdl } }' }]) {
        const { status, text } = await post(authorization, body, extra);
        expect(status).toBe(401);
        expect(JSON.parse(text).errors[0].extensions.code).toBe('UNAUTHENTICATED');
        expect(text).not.toContain('subject');
        expect(text).not.toContain('type Case');
      }
      expect(callsBetween(before, await connectorCalls(stack.support))).toEqual({});
    });

    it("refuses a portal identity another customer's records through _entities", async () => {
      const token = await createInternalSigner(stack.keys.internal.privateKey)(portalIdentity(), 'support');
      const own = await post(`Bearer ${token}`, entities(mine.caseId));
      expect(JSON.parse(own.text).data._entities[0].id).toBe(mine.caseId);
      const other = await post(`Bearer ${token}`, entities(theirs.caseId));
      const body = JSON.parse(other.text);
      // Exactly what a case that does not exist gives: nothing tells that it does.
      expect(body.data._entities[0]).toBeNull();
      const missing = JSON.parse((await post(`Bearer ${token}`, entities('987654321'))).text);
      expect(body).toEqual(missing);
      const subject = (
        stack.dbs.support.prepare('SELECT subject FROM tickets WHERE id = ?').get(Number(theirs.caseId)) as { subject: string }
      ).subject;
      expect(other.text).not.toContain(subject);

      const erpToken = await createInternalSigner(stack.keys.internal.privateKey)(portalIdentity(), 'erp');
      const invoice = await fetch(stack.erp.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${erpToken}` },
        body: JSON.stringify({
          query: 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Invoice { number balance { amount } } } }',
          variables: { r: [{ __typename: 'Invoice', number: theirs.invoiceNumber }] },
        }),
      }).then((response) => response.json() as Promise<any>);
      expect(invoice.data._entities[0]).toBeNull();
      expect(JSON.stringify(invoice)).not.toContain(theirs.invoiceNumber);
    });
  });

  describe('at the gateway', () => {
    const cases = '{ cases(first: 1) { nodes { id } } }';
    const sign = (claims: Record<string, unknown>, options: { issuer?: string; audience?: string; expiresIn?: number } = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'EdDSA' })
        .setIssuer(options.issuer ?? 'concord-dev')
        .setAudience(options.audience ?? 'concord')
        .setSubject('someone')
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expiresIn ?? 300))
        .sign(stack.keys.issuer.privateKey);

    type GatewayCase = [name: string, token: () => Promise<string>, status: number, code: string];
    it.each<GatewayCase>([
      ['no token', async () => '', 401, 'UNAUTHENTICATED'],
      ['a token that is not a bearer token', async () => 'Basic dXNlcjpwYXNz', 401, 'UNAUTHENTICATED'],
      ['an expired token', async () => `Bearer ${await sign({ roles: ['support_agent'] }, { expiresIn: -120 })}`, 401, 'UNAUTHENTICATED'],
      [
        'a token from another issuer',
        async () => `Bearer ${await sign({ roles: ['support_agent'] }, { issuer: 'https://evil.example' })}`,
        401,
        'UNAUTHENTICATED',
      ],
      [
        'a token for another audience',
        async () => `Bearer ${await sign({ roles: ['support_agent'] }, { audience: 'billing' })}`,
        401,
        'UNAUTHENTICATED',
      ],
      [
        'an unsigned token (alg: none)',
        async () =>
          `Bearer ${new UnsecuredJWT({ roles: ['integration'] }).setIssuer('concord-dev').setAudience('concord').setSubject('x').setExpirationTime('1m').encode()}`,
        401,
        'UNAUTHENTICATED',
      ],
      [
        'a token signed with another key',
        async () =>
          `Bearer ${await new SignJWT({ roles: ['integration'] })
            .setProtectedHeader({ alg: 'EdDSA' })
            .setIssuer('concord-dev')
            .setAudience('concord')
            .setSubject('x')
            .setExpirationTime('1m')
            .sign((await generateKeyPair('EdDSA')).privateKey)}`,
        401,
        'UNAUTHENTICATED',
      ],
      ['a token with no Concord role', async () => `Bearer ${await sign({ roles: ['admin'] })}`, 403, 'FORBIDDEN'],
      ['a portal token without its customer', async () => `Bearer ${await sign({ roles: ['portal_customer'] })}`, 403, 'FORBIDDEN'],
      [
        'the integration role from a client that is not one of Concord’s services',
        async () => `Bearer ${await sign({ roles: ['integration'] })}`,
        403,
        'FORBIDDEN',
      ],
    ])('refuses %s before executing anything', async (_name, token, status, code) => {
      const before = await Promise.all([stack.crm, stack.erp, stack.support].map(connectorCalls));
      const response = await postGraphQL(stack.gateway.url, cases, {}, { authorization: await token() });
      expect(response.status).toBe(status);
      expect(response.body.errors?.[0]?.extensions?.code).toBe(code);
      expect(response.body.data ?? null).toBeNull();
      const after = await Promise.all([stack.crm, stack.erp, stack.support].map(connectorCalls));
      after.forEach((calls, i) => expect(callsBetween(before[i]!, calls)).toEqual({}));
    });

    it('never writes the authorization header to a log', async () => {
      const token = await stack.bearer('finance');
      await postGraphQL(stack.gateway.url, cases, {}, { authorization: token });
      await postGraphQL(stack.gateway.url, cases, {}, { authorization: `${token}x` });
      const secret = token.split(' ')[1]!;
      expect(logLines.length).toBeGreaterThan(0);
      expect(logLines.filter((line) => line.includes(secret.slice(0, 40)) || line.includes(secret.slice(-40)))).toEqual([]);
    });

    it('keeps a denied field denied whichever way it is asked: aliases, fragments, inline fragments, nested paths', async () => {
      const c = mine.customerId;
      for (const query of [
        `{ customer(id: "${c}") { billing { limit: creditLimit { amount } } } }`,
        `{ customer(id: "${c}") { billing { ...Limit } } } fragment Limit on BillingProfile { creditLimit { amount } }`,
        `{ customer(id: "${c}") { billing { ... on BillingProfile { creditLimit { amount } } } } }`,
        `{ case(id: "${mine.caseId}") { customer { billing { creditLimit { amount } } } } }`,
        `{ invoice(number: "${mine.invoiceNumber}") { customer { billing { creditLimit { amount } } } } }`,
      ]) {
        const { body } = await stack.queryAs('support_agent', query);
        expect(
          body.errors?.map((error) => error.extensions?.code),
          query,
        ).toContain('FORBIDDEN');
        expect(JSON.stringify(body.data ?? {}), query).not.toMatch(/"amount"/);
      }
      const finance = await stack.queryAs('finance', `{ customer(id: "${c}") { billing { creditLimit { amount } } } }`);
      expect(finance.body.errors).toBeUndefined();
      expect(finance.body.data).toMatchObject({
        customer: { billing: { creditLimit: { amount: expect.stringMatching(/^\d+\.\d{2}$/) } } },
      });
    });

    it('shows internal notes to agents only', async () => {
      const query = `{ case(id: "${mine.caseId}") { comments { body public } } }`;
      const internal = stack.dbs.support
        .prepare('SELECT body FROM ticket_comments WHERE ticket_id = ? AND public = 0')
        .all(Number(mine.caseId)) as { body: string }[];
      expect(internal.length).toBeGreaterThan(0);
      const agent = await stack.queryAs<{ case: { comments: { body: string; public: boolean }[] } }>('support_agent', query);
      expect(agent.body.data!.case.comments.filter((comment) => !comment.public).map((comment) => comment.body)).toEqual(
        internal.map((c) => c.body),
      );
      const sales = await stack.queryAs<{ case: { comments: { body: string; public: boolean }[] } }>('sales_rep', query);
      expect(sales.body.data!.case.comments.length).toBeGreaterThan(0);
      expect(sales.body.data!.case.comments.every((comment) => comment.public)).toBe(true);
      const detail = await stack.queryAs<{ case: { comments: { public: boolean }[] } }>(portal(), operation('portal', 'CaseDetail'), {
        id: mine.caseId,
      });
      expect(detail.body.errors).toBeUndefined();
      expect(detail.body.data!.case.comments.every((comment) => comment.public)).toBe(true);
      for (const { body } of internal) expect(JSON.stringify(detail.body)).not.toContain(body);
      const finance = await stack.queryAs('finance', query);
      expect(finance.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    });
  });

  describe('a portal customer', () => {
    it('runs the registered portal operations on its own records', async () => {
      const cases = await stack.queryAs<{ cases: { totalCount: number; nodes: { id: string }[] } }>(
        portal(),
        operation('portal', 'MyCases'),
        { first: 100 },
      );
      expect(cases.body.errors).toBeUndefined();
      const own = stack.dbs.support
        .prepare(
          'SELECT t.id FROM tickets t JOIN organizations o ON o.id = t.organization_id WHERE o.external_id = ? ORDER BY t.id DESC LIMIT 100',
        )
        .all(mine.customerId) as { id: number }[];
      const total = stack.dbs.support
        .prepare('SELECT COUNT(*) AS n FROM tickets t JOIN organizations o ON o.id = t.organization_id WHERE o.external_id = ?')
        .get(mine.customerId) as { n: number };
      expect(cases.body.data!.cases.nodes.map((node) => node.id)).toEqual(own.map((t) => String(t.id)));
      expect(cases.body.data!.cases.totalCount).toBe(total.n);

      const orders = await stack.queryAs<{ customer: { orders: { number: string }[] } }>(portal(), operation('portal', 'MyOrders'), {
        customerId: mine.customerId,
      });
      expect(orders.body.errors).toBeUndefined();
      expect(orders.body.data!.customer.orders.length).toBeGreaterThan(0);
      const invoices = await stack.queryAs<{ customer: { invoices: { number: string }[] } }>(portal(), operation('portal', 'MyInvoices'), {
        customerId: mine.customerId,
      });
      expect(invoices.body.errors).toBeUndefined();
      expect(invoices.body.data!.customer.invoices.length).toBeGreaterThan(0);
    });

    it("gets FORBIDDEN, and nothing of it, for another customer's records", async () => {
      const checks = [
        { op: 'CaseDetail', variables: { id: theirs.caseId } },
        { op: 'MyOrders', variables: { customerId: theirs.customerId } },
        { op: 'MyInvoices', variables: { customerId: theirs.customerId } },
        { op: 'CaseDetail', variables: { id: '987654321' } },
      ];
      for (const { op, variables } of checks) {
        const { body, text } = await stack.queryAs(portal(), operation('portal', op), variables);
        expect(body.errors?.[0]?.extensions?.code, op).toBe('FORBIDDEN');
        expect(
          Object.values(body.data ?? {}).every((value) => value === null),
          op,
        ).toBe(true);
        expect(text).not.toContain(theirs.orderNumber);
        expect(body.errors?.[0]?.message).toBe('Not allowed for this identity');
      }
    });

    it('may not run anything but the registered portal operations', async () => {
      const freeForm = await stack.queryAs(portal(), '{ cases(first: 1) { nodes { id } } }');
      expect(freeForm.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(freeForm.body.data ?? null).toBeNull();
      // A registered document with one character changed is not the registered operation.
      const altered = await stack.queryAs(portal(), `${operation('portal', 'MyCases')} `);
      expect(altered.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

      const bearer = await stack.bearer(portal());
      const byId = (hash: string) =>
        fetch(stack.gateway.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: bearer },
          body: JSON.stringify({ extensions: { persistedQuery: { version: 1, sha256Hash: hash } }, variables: { first: 3 } }),
        }).then((response) => response.json() as Promise<any>);
      const registered = await byId(await sha256(operation('portal', 'MyCases')));
      expect(registered.errors).toBeUndefined();
      expect(registered.data.cases.nodes.length).toBeGreaterThan(0);
      const unknown = await byId(await sha256('{ cases { nodes { id } } }'));
      expect(unknown.errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    });
  });
});
