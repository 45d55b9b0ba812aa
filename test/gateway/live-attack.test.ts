import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { gatewayConfig, operation, postGraphQL, startStack, tokenFor, type Stack, type Who } from '../helpers/stack.ts';

/**
 * The gateway's live subscriptions as an outsider attacks them: portal isolation, field rules,
 * authentication, limits and robustness. The comments marked "Was a defect" say what a test
 * found before the code was fixed.
 */

type Payload = { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const until = async (check: () => boolean, ms: number) => {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await sleep(5);
  }
  return true;
};

describe('live subscriptions under attack', () => {
  let stack: Stack;
  let caseId: string;
  let customer: string;
  let otherCustomer: string;
  let otherCaseId: string;
  let clients: Client[] = [];
  let closers: Array<() => void> = [];
  let sockets: WebSocket[] = [];

  beforeAll(async () => {
    stack = await startStack({
      gateway: {
        // No clock tolerance: a token that expires does so when it says (the tests wait for it).
        auth: { ...gatewayConfig().auth, clockToleranceSeconds: 0 },
        live: { maxPerConnection: 20, maxConnections: 40, maxPerSubject: 1_000 },
      },
    });
    const row = stack.dbs.support
      .prepare(
        `SELECT t.id, o.external_id AS customer FROM tickets t JOIN organizations o ON o.id = t.organization_id
         WHERE t.status IN ('open', 'new') ORDER BY t.id LIMIT 1`,
      )
      .get() as { id: number; customer: string };
    caseId = String(row.id);
    customer = row.customer;
    const other = stack.dbs.support
      .prepare(
        `SELECT t.id, o.external_id AS customer FROM tickets t JOIN organizations o ON o.id = t.organization_id
         WHERE o.external_id <> ? AND t.status IN ('open', 'new') ORDER BY t.id LIMIT 1`,
      )
      .get(customer) as { id: number; customer: string };
    otherCustomer = other.customer;
    otherCaseId = String(other.id);
  });
  /** Subscriptions the hub holds before each test (the leaks shown below stay for the process's life). */
  let base = 0;
  beforeEach(() => {
    base = stack.gateway.hub.size;
  });
  afterEach(async () => {
    for (const close of closers) close();
    for (const client of clients) await client.dispose();
    for (const socket of sockets) socket.terminate();
    closers = [];
    clients = [];
    sockets = [];
    await until(() => stack.gateway.hub.size <= base, 2_000);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const wsUrl = () => stack.gateway.url.replace(/^http/, 'ws');
  const sseUrl = () => stack.gateway.url.replace(/\/graphql$/, '/graphql/stream');
  const wsClient = async (who: Who | { authorization: string }, extra: { headers?: Record<string, string> } = {}) => {
    const authorization = typeof who === 'object' && 'authorization' in who ? who.authorization : await stack.bearer(who);
    const client = createWsClient({
      url: wsUrl(),
      webSocketImpl: extra.headers
        ? class extends WebSocket {
            constructor(address: string, protocols: string | string[]) {
              super(address, protocols, { headers: extra.headers });
            }
          }
        : WebSocket,
      connectionParams: extra.headers ? undefined : { authorization },
      retryAttempts: 0,
      lazy: false,
      onNonLazyError: () => undefined,
    });
    clients.push(client);
    return client;
  };
  /** How a connection ended (its close code), or 'open' if it still is after `ms`. */
  const closeCodeOf = (client: Client, ms = 2_000) =>
    new Promise<number | 'open'>((resolve) => {
      const timer = setTimeout(() => resolve('open'), ms);
      client.on('closed', (event) => {
        clearTimeout(timer);
        resolve((event as { code: number }).code);
      });
    });
  const follow = (client: Client, query: string, variables: Record<string, unknown> = {}, operationName?: string) => {
    const messages: Payload[] = [];
    const errors: unknown[] = [];
    const state = { done: false };
    closers.push(
      client.subscribe(
        { query, variables, ...(operationName ? { operationName } : {}) },
        {
          next: (payload) => void messages.push(payload as Payload),
          error: (error) => void errors.push(error),
          complete: () => void (state.done = true),
        },
      ),
    );
    return { messages, errors, state };
  };
  const followSse = (authorization: string | undefined, query: string, variables: Record<string, unknown> = {}) => {
    const client = createSseClient({ url: sseUrl(), headers: authorization ? { authorization } : {}, retryAttempts: 0 });
    const messages: Payload[] = [];
    const errors: unknown[] = [];
    const state = { done: false };
    const stop = client.subscribe(
      { query, variables },
      {
        next: (payload) => void messages.push(payload as Payload),
        error: (error) => void errors.push(error),
        complete: () => void (state.done = true),
      },
    );
    closers.push(() => {
      stop();
      client.dispose();
    });
    return { messages, errors, state };
  };
  /** Writes a comment into the desk's own database, as the desk does when someone adds one. */
  const commentInDesk = (ticket: string, body: string, isPublic = true) => {
    const at = new Date().toISOString();
    stack.dbs.support
      .prepare('INSERT INTO ticket_comments (ticket_id, author_id, body, public, created_at) VALUES (?, NULL, ?, ?, ?)')
      .run(Number(ticket), body, isPublic ? 1 : 0, at);
    stack.dbs.support.prepare('UPDATE tickets SET updated_at = ? WHERE id = ?').run(at, Number(ticket));
  };
  const errorText = (errors: unknown[]) => JSON.stringify(errors);
  const CASE_BY_ID = 'subscription ($id: ID!) { caseUpdated(id: $id) { id status comments { body } } }';

  describe('portal isolation', () => {
    it('sends a portal customer nothing of another customer’s case, whatever id it subscribes to, while the owner is told', async () => {
      const owner = follow(await wsClient({ role: 'portal_customer', customer }), operation('portal', 'CaseUpdates'), { id: caseId });
      const stranger = follow(await wsClient({ role: 'portal_customer', customer: otherCustomer }), operation('portal', 'CaseUpdates'), {
        id: caseId,
      });
      const strangerAll = follow(
        await wsClient({ role: 'portal_customer', customer: otherCustomer }),
        operation('portal', 'MyCaseChanges'),
        // Variables the document does not declare: ignored, never a wider filter.
        { filter: { customerId: customer }, customerId: customer },
      );
      const strangerSse = followSse(
        await stack.bearer({ role: 'portal_customer', customer: otherCustomer }),
        operation('portal', 'CaseUpdates'),
        { id: caseId },
      );
      await sleep(300);
      const body = `Public reply ${Date.now()}`;
      commentInDesk(caseId, body);
      expect(await until(() => JSON.stringify(owner.messages).includes(body), 2_000), 'the owner is told').toBe(true);
      await sleep(400);
      expect(stranger.messages).toEqual([]);
      expect(stranger.errors).toEqual([]); // not even an error that says something happened
      expect(strangerAll.messages).toEqual([]);
      expect(strangerAll.errors).toEqual([]);
      expect(strangerSse.messages).toEqual([]);
    });

    it('takes from a portal customer only a registered document, byte for byte, and only its subscription', async () => {
      const portal = await wsClient({ role: 'portal_customer', customer });
      const registered = operation('portal', 'CaseUpdates');
      const variants = [
        registered.replace(/\n/g, '\r\n'),
        `${registered}\n`,
        registered.replace('caseUpdated', 'x: caseUpdated'),
        // The registered document with a second operation added, named to run.
        `${registered}\nsubscription Other($id: ID!) { caseUpdated(id: $id) { id subject description } }`,
        `subscription CaseUpdates($id: ID!) { ...F } fragment F on Subscription { caseUpdated(id: $id) { id } }`,
      ];
      const refused = variants.map((query) => follow(portal, query, { id: otherCaseId }, 'CaseUpdates'));
      // A registered query sent over the WebSocket is a query: refused.
      const query = follow(portal, operation('portal', 'CaseDetail'), { id: caseId });
      // The registered document, but an operation name it does not hold.
      const misnamed = follow(portal, registered, { id: caseId }, 'Other');
      await until(() => [...refused, query, misnamed].every((s) => s.errors.length > 0), 2_000);
      for (const subscription of refused) expect(errorText(subscription.errors)).toContain('registered');
      expect(errorText(query.errors)).toContain('this endpoint serves subscriptions');
      expect(errorText(misnamed.errors)).toContain('no operation named Other');
      expect(stack.gateway.hub.size).toBe(base);
    });
  });

  describe('field rules', () => {
    it('sends finance nothing of a case’s conversation (its role may not read comments)', async () => {
      const finance = follow(await wsClient('finance'), CASE_BY_ID, { id: caseId });
      const agent = follow(await wsClient('support_agent'), CASE_BY_ID, { id: caseId });
      await sleep(300);
      const body = `Internal ${Date.now()}`;
      commentInDesk(caseId, body, false);
      expect(await until(() => JSON.stringify(agent.messages).includes(body), 2_000)).toBe(true);
      await sleep(300);
      expect(JSON.stringify(finance.messages)).not.toContain(body);
      expect(JSON.stringify(finance.messages)).not.toContain('comments');
    });

    it('sends a portal customer its own case’s public conversation only, never an internal note', async () => {
      const portal = follow(await wsClient({ role: 'portal_customer', customer }), operation('portal', 'CaseUpdates'), { id: caseId });
      await sleep(300);
      const note = `Internal note ${Date.now()}`;
      commentInDesk(caseId, note, false);
      const reply = `Public ${Date.now()}`;
      commentInDesk(caseId, reply, true);
      expect(await until(() => JSON.stringify(portal.messages).includes(reply), 2_000)).toBe(true);
      expect(JSON.stringify(portal.messages)).not.toContain(note);
    });

    // Was a defect: a message whose answer holds errors (here a field the role may not read, nullable,
    // so the rest of the case is still shown) kills the WebSocket subscription. hub.ts #offer
    // passes Apollo's *formatted* errors (plain objects) as ExecutionResult.errors; graphql-ws's
    // emit.next calls `error.toJSON()` on each, which throws ("e.toJSON is not a function"), and the
    // subscription ends with that error instead of delivering the message.
    it('delivers a message with a partial answer (a field the role may not read is null, with its error) over the WebSocket', async () => {
      const query = 'subscription ($id: ID!) { caseUpdated(id: $id) { id updatedAt returnAuthorizations { number } } }';
      // As a query the sales rep gets the case with returnAuthorizations null and a FORBIDDEN error.
      const asQuery = await stack.queryAs(
        'sales_rep',
        'query ($id: ID!) { case(id: $id) { id updatedAt returnAuthorizations { number } } }',
        {
          id: caseId,
        },
      );
      expect(asQuery.body.data?.case).toMatchObject({ id: caseId, returnAuthorizations: null });
      expect(asQuery.body.errors?.length).toBeGreaterThan(0);
      const rep = follow(await wsClient('sales_rep'), query, { id: caseId });
      await sleep(300);
      commentInDesk(caseId, `Touch ${Date.now()}`);
      await until(() => rep.messages.length > 0 || rep.errors.length > 0, 2_000);
      // As it is: rep.errors is [[{ message: 'e.toJSON is not a function' }]] and no message came.
      expect(rep.errors).toEqual([]);
      expect(rep.messages[0]?.data?.caseUpdated).toMatchObject({ id: caseId, returnAuthorizations: null });
    });

    it('delivers the same partial answer over SSE (graphql-sse serialises plain errors)', async () => {
      const query = 'subscription ($id: ID!) { caseUpdated(id: $id) { id updatedAt returnAuthorizations { number } } }';
      const rep = followSse(await stack.bearer('sales_rep'), query, { id: caseId });
      await sleep(300);
      commentInDesk(caseId, `Touch ${Date.now()}`);
      expect(await until(() => rep.messages.length > 0, 2_000)).toBe(true);
      expect(rep.messages[0]?.data?.caseUpdated).toMatchObject({ id: caseId, returnAuthorizations: null });
      expect(JSON.stringify(rep.messages[0]?.errors)).toContain('FORBIDDEN');
    });
  });

  describe('authentication', () => {
    it('closes a WebSocket with 4403 for no token, a malformed one, a forged one and an expired one', async () => {
      const forged = `Bearer ${(await tokenFor(stack.keys, 'support_agent')).slice(0, -4)}AAAA`;
      const expired = `Bearer ${await tokenFor(stack.keys, 'support_agent', -5)}`;
      const codes = await Promise.all(
        ['', 'Bearer', 'Basic Zm9vOmJhcg==', forged, expired].map(async (authorization) => closeCodeOf(await wsClient({ authorization }))),
      );
      expect(codes).toEqual([4403, 4403, 4403, 4403, 4403]);
    });

    it('takes the token from the upgrade request’s Authorization header too', async () => {
      const client = await wsClient({ authorization: '' }, { headers: { authorization: await stack.bearer('support_agent') } });
      const agent = follow(client, CASE_BY_ID, { id: caseId });
      await sleep(300);
      const body = `Header token ${Date.now()}`;
      commentInDesk(caseId, body);
      expect(await until(() => JSON.stringify(agent.messages).includes(body), 2_000)).toBe(true);
    });

    it('answers SSE without a token, with a forged one or an expired one 401, subscribing nothing', async () => {
      const forged = `Bearer ${(await tokenFor(stack.keys, 'support_agent')).slice(0, -4)}AAAA`;
      const expired = `Bearer ${await tokenFor(stack.keys, 'support_agent', -5)}`;
      for (const authorization of [undefined, 'Bearer nope', forged, expired]) {
        const response = await fetch(sseUrl(), {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(authorization ? { authorization } : {}) },
          body: JSON.stringify({ query: CASE_BY_ID, variables: { id: caseId } }),
        });
        expect(response.status).toBe(401);
        await response.text();
      }
      expect(stack.gateway.hub.size).toBe(base);
    });

    // Fixed while this review ran (283bc7a): a connection ends at its token's exp (4401), an SSE stream completes.
    it('stops pushing to a WebSocket connection whose token has expired: closed with 4401', async () => {
      const authorization = `Bearer ${await tokenFor(stack.keys, 'support_agent', 2)}`;
      const client = await wsClient({ authorization });
      const closed = closeCodeOf(client, 4_000);
      const agent = follow(client, CASE_BY_ID, { id: caseId });
      await sleep(300);
      const before = `Before expiry ${Date.now()}`;
      commentInDesk(caseId, before);
      expect(await until(() => JSON.stringify(agent.messages).includes(before), 2_000)).toBe(true);
      expect(await closed).toBe(4401);
      const after = `After expiry ${Date.now()}`;
      commentInDesk(caseId, after);
      await sleep(500);
      expect(JSON.stringify(agent.messages)).not.toContain(after);
      expect(stack.gateway.hub.size).toBe(base);
    });

    it('stops pushing to an SSE stream whose token has expired: the stream completes', async () => {
      const sse = followSse(`Bearer ${await tokenFor(stack.keys, 'support_agent', 2)}`, CASE_BY_ID, { id: caseId });
      expect(await until(() => sse.state.done, 4_000)).toBe(true);
      const after = `After expiry SSE ${Date.now()}`;
      commentInDesk(caseId, after);
      await sleep(500);
      expect(JSON.stringify(sse.messages)).not.toContain(after);
      expect(stack.gateway.hub.size).toBe(base);
    });
  });

  describe('limits and abuse', () => {
    it('refuses a document past maxTokens, a query or mutation, two root fields, an unknown field and introspection', async () => {
      const agent = await wsClient('support_agent');
      const huge = `subscription { caseUpdated(id: "1") { ${'id '.repeat(2_100)} } }`;
      const cases = {
        huge: follow(agent, huge),
        query: follow(agent, `query ($id: ID!) { case(id: $id) { id } }`, { id: caseId }),
        mutation: follow(agent, `mutation { recordCaseUpdate(caseId: "1", note: "x") { id } }`),
        two: follow(agent, `subscription ($id: ID!) { caseUpdated(id: $id) { id } casesChanged { id } }`, { id: caseId }),
        aliasTwo: follow(agent, `subscription ($id: ID!) { a: caseUpdated(id: $id) { id } b: caseUpdated(id: $id) { id } }`, {
          id: caseId,
        }),
        unknown: follow(agent, `subscription { ticketUpdated(id: "1") { id } }`),
        typename: follow(agent, `subscription { __typename }`),
        schema: follow(agent, `subscription { __schema { types { name } } }`),
        directive: follow(agent, `subscription ($id: ID!) { caseUpdated(id: $id) @include(if: true) { id } }`, { id: caseId }),
        spread: follow(agent, `subscription ($id: ID!) { ...on Subscription { caseUpdated(id: $id) { id } } }`, { id: caseId }),
        noName: follow(agent, `subscription A { casesChanged { id } } subscription B { casesChanged { id } }`),
      };
      await until(() => Object.values(cases).every((c) => c.errors.length > 0), 3_000);
      for (const [name, c] of Object.entries(cases)) expect(c.errors.length, name).toBeGreaterThan(0);
      expect(errorText(cases.huge.errors)).toMatch(/token limit|tokens/i);
      expect(errorText(cases.query.errors)).toContain('serves subscriptions');
      expect(errorText(cases.two.errors)).toMatch(/only one top level field|exactly one field/);
      expect(errorText(cases.unknown.errors)).toContain('GRAPHQL_VALIDATION_FAILED');
      expect(stack.gateway.hub.size).toBe(base);
    });

    it('frees a connection’s slot when a subscription completes', async () => {
      const agent = await wsClient('support_agent');
      const stops: Array<() => void> = [];
      for (let n = 0; n < 20; n++)
        stops.push(agent.subscribe({ query: CASE_BY_ID, variables: { id: caseId } }, { next() {}, error() {}, complete() {} }));
      await until(() => stack.gateway.hub.size === base + 20, 2_000);
      stops[0]!();
      await until(() => stack.gateway.hub.size === base + 19, 2_000);
      const oneMore = follow(agent, CASE_BY_ID, { id: caseId });
      await sleep(300);
      expect(oneMore.errors).toEqual([]);
      expect(stack.gateway.hub.size).toBe(base + 20);
      for (const stop of stops) stop();
    });

    // Was a defect: a document of a query and a subscription, the subscription named by
    // operationName, used to be registered by the hub but never run by graphql-ws (the execution
    // arguments named no operation), and stayed for the life of the process. The operation chosen
    // is now handed on, and a subscription graphql-ws cannot run is released (onError).
    it('runs the named subscription of a document of several operations, and leaves nothing behind when the client goes', async () => {
      const agent = await wsClient('support_agent');
      const doc = `query Q { __typename } subscription S($id: ID!) { caseUpdated(id: $id) { id updatedAt } }`;
      const tries = Array.from({ length: 5 }, () => follow(agent, doc, { id: caseId }, 'S'));
      await sleep(300);
      expect(tries.every((t) => t.errors.length === 0)).toBe(true);
      expect(stack.gateway.hub.size).toBe(base + 5);
      await agent.dispose();
      await sleep(300);
      // Nothing is subscribed any more: the client has gone.
      expect(stack.gateway.hub.size).toBe(base);
    });

    it('does not count refused subscriptions against the connection’s limit', async () => {
      const agent = await wsClient('support_agent');
      const doc = `subscription S($id: ID!) { caseUpdated(id: $id) { id noSuchField } }`;
      const tries = Array.from({ length: 20 }, () => follow(agent, doc, { id: caseId }, 'S'));
      await until(() => tries.every((t) => t.errors.length > 0), 2_000);
      const good = follow(agent, CASE_BY_ID, { id: caseId });
      await sleep(300);
      expect(good.errors).toEqual([]);
    });

    // Was a defect: the subscription is checked only against graphql's default validation rules
    // (hub.ts open: validate(schema, document)); the gateway's own limits (depth, aliases,
    // directives: graphql-armor; cost: cost.ts; fields/directives/string literals:
    // request-guard.ts screenRequest) are applied only to the derived query at each event, inside
    // executeOperation. A subscription past them is accepted without an error, then every event
    // runs a derived query that the limits refuse, so the subscriber silently never receives a
    // message (and the gateway pays a parse+validate per event). Expected: refused at subscribe
    // time with the same error a POST gets. Fix: run armor's validationRules, costLimit and
    // documentProblem (maxFields/maxDirectives) on the derived query in hub.open and refuse there.
    it('refuses at subscribe time a selection deeper than LIMIT_MAX_DEPTH, as a query is refused', async () => {
      const deep = `{ id customer { cases(first: 2) { customer { cases(first: 2) { customer { cases(first: 2) { customer { cases(first: 2) { customer { cases(first: 2) { id } } } } } } } } } } }`;
      const asQuery = await stack.query(`query ($id: ID!) { case(id: $id) ${deep} }`, { id: caseId });
      expect(JSON.stringify(asQuery.body.errors)).toMatch(/depth/i);
      const agent = follow(await wsClient('support_agent'), `subscription ($id: ID!) { caseUpdated(id: $id) ${deep} }`, { id: caseId });
      await sleep(300);
      commentInDesk(caseId, `Deep ${Date.now()}`);
      await sleep(800);
      // As it is: no error, no message, ever.
      expect(agent.messages.length + agent.errors.length).toBeGreaterThan(0);
      expect(errorText(agent.errors)).toMatch(/depth/i);
    });

    it('refuses at subscribe time a document with more fields than LIMIT_MAX_FIELDS, as a query is refused', async () => {
      const fields = `{ ${Array.from({ length: 600 }, () => 'id').join(' ')} }`;
      const asQuery = await stack.query(`query ($id: ID!) { case(id: $id) ${fields} }`, { id: caseId });
      expect(asQuery.status).toBe(400);
      expect(JSON.stringify(asQuery.body.errors)).toContain('more than 500 fields');
      const agent = follow(await wsClient('support_agent'), `subscription ($id: ID!) { caseUpdated(id: $id) ${fields} }`, { id: caseId });
      await sleep(500);
      expect(errorText(agent.errors)).toContain('more than 500 fields');
    });

    it('refuses at subscribe time a selection past LIMIT_MAX_ALIASES, as a query is refused', async () => {
      const aliases = `{ ${Array.from({ length: 20 }, (_, n) => `a${n}: id`).join(' ')} }`;
      const asQuery = await stack.query(`query ($id: ID!) { case(id: $id) ${aliases} }`, { id: caseId });
      expect(JSON.stringify(asQuery.body.errors)).toMatch(/alias/i);
      const agent = follow(await wsClient('support_agent'), `subscription ($id: ID!) { caseUpdated(id: $id) ${aliases} }`, { id: caseId });
      await sleep(300);
      commentInDesk(caseId, `Aliases ${Date.now()}`);
      await sleep(800);
      expect(errorText(agent.errors)).toMatch(/alias/i);
    });

    // Was a defect (limit bypass under concurrency): onConnect checks `connections >= maxConnections`
    // before `await authenticate(...)` and increments after it (transports.ts onConnect), so
    // connection inits arriving together all pass the check. Same in the SSE onSubscribe. Fix:
    // reserve the slot (connections++) before the await and release it on refusal.
    it('holds at most LIVE_MAX_CONNECTIONS connections, even when they arrive together', async () => {
      const tokens = await Promise.all(
        Array.from({ length: 60 }, (_, n) =>
          tokenFor(stack.keys, { subject: `agent-${n}@test.example`, roles: ['support_agent'], customerId: null }),
        ),
      );
      // All sockets open first, then every connection_init sent in the same tick.
      const opened = await Promise.all(
        tokens.map(
          () =>
            new Promise<WebSocket>((resolve) => {
              const socket = new WebSocket(wsUrl(), 'graphql-transport-ws');
              sockets.push(socket);
              socket.on('open', () => resolve(socket));
            }),
        ),
      );
      const connected = await Promise.all(
        opened.map(
          (socket, n) =>
            new Promise<boolean>((resolve) => {
              socket.on('message', (data) => resolve(JSON.parse(String(data)).type === 'connection_ack'));
              socket.on('close', () => resolve(false));
              socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${tokens[n]}` } }));
            }),
        ),
      );
      console.log(`60 connection inits at once, limit 40: ${connected.filter(Boolean).length} accepted`);
      expect(connected.filter(Boolean).length).toBeLessThanOrEqual(40);
    });

    it('refuses connections past LIVE_MAX_CONNECTIONS, one after another (and frees them when they close)', async () => {
      const token = await stack.bearer('support_agent');
      const open = async () =>
        new Promise<boolean>((resolve) => {
          const socket = new WebSocket(wsUrl(), 'graphql-transport-ws');
          sockets.push(socket);
          socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: token } })));
          socket.on('message', (data) => resolve(JSON.parse(String(data)).type === 'connection_ack'));
          socket.on('close', () => resolve(false));
        });
      const results: boolean[] = [];
      for (let n = 0; n < 42; n++) results.push(await open());
      expect(results.filter(Boolean)).toHaveLength(40);
      expect(results.slice(40)).toEqual([false, false]);
      for (const socket of sockets.splice(0)) socket.terminate();
      await sleep(300);
      expect(await open()).toBe(true);
    });

    it('costs one derived query per subscriber per changed case: casesChanged with no filter, as staff (measured)', async () => {
      const metricsOf = async () => {
        const text = await (await fetch(stack.support.url.replace(/\/graphql$/, '/metrics'))).text();
        return text
          .split('\n')
          .filter((line) => line.startsWith('concord_http_request_duration_seconds_count') && line.includes('route="graphql"'))
          .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
      };
      const agent = await wsClient('support_agent');
      const queues = Array.from({ length: 20 }, () => follow(agent, 'subscription { casesChanged { id subject } }'));
      await sleep(300);
      const before = await metricsOf();
      commentInDesk(caseId, `Fan-out ${Date.now()}`);
      await until(() => queues.every((q) => q.messages.length > 0), 3_000);
      await sleep(300);
      const calls = (await metricsOf()) - before;
      console.log(`one case change, 20 unfiltered casesChanged subscriptions: ${calls} support subgraph requests`);
      expect(queues.every((q) => q.messages.length === 1)).toBe(true);
      // With the entity cache, the 20 derived queries share fetches; the gateway still runs 20 operations.
      expect(calls).toBeGreaterThan(0);
    });
  });

  describe('robustness', () => {
    it('keeps serving others while a subscriber never reads, and forgets a client that drops mid-stream', async () => {
      // A raw client that subscribes, then stops reading its socket.
      const authorization = await stack.bearer('support_agent');
      const stalled = new WebSocket(wsUrl(), 'graphql-transport-ws');
      sockets.push(stalled);
      await new Promise<void>((resolve) => {
        stalled.on('open', () => stalled.send(JSON.stringify({ type: 'connection_init', payload: { authorization } })));
        stalled.once('message', () => {
          stalled.send(
            JSON.stringify({
              id: '1',
              type: 'subscribe',
              payload: { query: operation('agent-console', 'CaseUpdates'), variables: { id: caseId } },
            }),
          );
          resolve();
        });
      });
      await until(() => stack.gateway.hub.size === base + 1, 2_000);
      (stalled as unknown as { _socket: { pause(): void } })._socket.pause();
      const agent = follow(await wsClient('support_agent'), CASE_BY_ID, { id: caseId });
      await sleep(300);
      for (let n = 0; n < 10; n++) {
        const body = `Burst ${n} ${Date.now()} ${'x'.repeat(2_000)}`;
        commentInDesk(caseId, body);
        expect(await until(() => JSON.stringify(agent.messages).includes(body), 2_000), `comment ${n}`).toBe(true);
      }
      stalled.terminate();
      await until(() => stack.gateway.hub.size === base + 1, 2_000);
      expect(stack.gateway.hub.size).toBe(base + 1);
    });

    it('forgets an SSE subscriber that disconnects', async () => {
      const controller = new AbortController();
      const response = await fetch(sseUrl(), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: await stack.bearer('support_agent') },
        body: JSON.stringify({ query: CASE_BY_ID, variables: { id: caseId } }),
        signal: controller.signal,
      });
      expect(response.status).toBe(200);
      await until(() => stack.gateway.hub.size === base + 1, 2_000);
      controller.abort();
      expect(await until(() => stack.gateway.hub.size === base, 2_000)).toBe(true);
    });
  });
});

describe('a gateway stopping with live subscriptions open', () => {
  it('ends WebSocket and SSE subscriptions and stops promptly', async () => {
    const stack = await startStack();
    try {
      const caseId = String((stack.dbs.support.prepare(`SELECT id FROM tickets ORDER BY id LIMIT 1`).get() as { id: number }).id);
      const authorization = await stack.bearer('support_agent');
      const ws = createWsClient({
        url: stack.gateway.url.replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        connectionParams: { authorization },
        retryAttempts: 0,
        lazy: false,
        onNonLazyError: () => undefined,
      });
      const closed = new Promise<number>((resolve) => ws.on('closed', (event) => resolve((event as { code: number }).code)));
      let wsEnded = false;
      ws.subscribe(
        { query: 'subscription ($id: ID!) { caseUpdated(id: $id) { id } }', variables: { id: caseId } },
        { next() {}, error: () => void (wsEnded = true), complete: () => void (wsEnded = true) },
      );
      const sse = createSseClient({
        url: stack.gateway.url.replace(/\/graphql$/, '/graphql/stream'),
        headers: { authorization },
        retryAttempts: 0,
      });
      let sseEnded = false;
      sse.subscribe(
        { query: 'subscription ($id: ID!) { caseUpdated(id: $id) { id } }', variables: { id: caseId } },
        { next() {}, error: () => void (sseEnded = true), complete: () => void (sseEnded = true) },
      );
      await until(() => stack.gateway.hub.size === 2, 2_000);
      expect(stack.gateway.hub.size).toBe(2);
      const started = performance.now();
      await stack.gateway.stop();
      const stopMs = performance.now() - started;
      console.log(`gateway stop with 2 live subscriptions open: ${stopMs.toFixed(0)} ms`);
      expect(stopMs).toBeLessThan(3_000);
      expect(await closed).toBe(1001);
      expect(await until(() => wsEnded && sseEnded, 2_000)).toBe(true);
      expect(stack.gateway.hub.size).toBe(0);
      sse.dispose();
      await ws.dispose();
      // A new subscription after the stop gets nowhere.
      const refused = await postGraphQL(stack.gateway.url, '{ __typename }').catch(() => null);
      expect(refused === null || refused.status >= 500).toBe(true);
    } finally {
      await stack.stop();
    }
  });
});

describe('a live connection and AUTH_MAX_TOKEN_AGE_S', () => {
  // Was a defect (a gap in the token expiry): the verifier refuses a token once it is older than
  // AUTH_MAX_TOKEN_AGE_S, whatever its exp (auth.ts: validUntilMs = min(exp, iat + maxTokenAge)),
  // but transports.ts expiresInMs reads only `exp`: a connection opened with a long-lived token
  // outlives the maximum age the gateway enforces on every query. Fix: close at
  // min(exp, iat + maxTokenAgeSeconds) (have the verifier return the instant it is valid until).
  it('ends a connection when its token passes the maximum age, as queries with it are refused', async () => {
    const stack = await startStack({ gateway: { auth: { ...gatewayConfig().auth, maxTokenAgeSeconds: 2, clockToleranceSeconds: 0 } } });
    try {
      const authorization = `Bearer ${await tokenFor(stack.keys, 'support_agent', 600)}`;
      const client = createWsClient({
        url: stack.gateway.url.replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        connectionParams: { authorization },
        retryAttempts: 0,
        lazy: false,
        onNonLazyError: () => undefined,
      });
      const closed = new Promise<number>((resolve) => client.on('closed', (event) => resolve((event as { code: number }).code)));
      client.subscribe({ query: 'subscription { casesChanged { id } }' }, { next() {}, error() {}, complete() {} });
      await sleep(3_500);
      const asQuery = await postGraphQL(stack.gateway.url, '{ __typename }', {}, { authorization });
      expect(asQuery.status).toBe(401);
      const code = await Promise.race([closed, sleep(500).then(() => 'still open' as const)]);
      await client.dispose();
      expect(code).toBe(4401);
    } finally {
      await stack.stop();
    }
  });
});
