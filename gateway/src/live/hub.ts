import { createHash, randomUUID } from 'node:crypto';
import {
  extendSchema,
  getArgumentValues,
  getVariableValues,
  GraphQLError,
  Kind,
  parse,
  parseType,
  print,
  validate,
  visit,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import type { CanonicalEvent } from '../../../platform/events/cloudevent.ts';
import type { EntityRef } from '../../../platform/events/schemas.ts';
import { entitiesOf } from '../../../platform/events/schemas.ts';
import { isCustomerScoped, type Identity } from '../../../platform/identity.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { RegisteredOperations } from '../portal.ts';
import { LIVE_FIELDS, LIVE_SDL, type LiveField } from './fields.ts';

/** A subscription request as both transports carry it. */
export interface LivePayload {
  readonly query?: unknown;
  readonly variables?: unknown;
  readonly operationName?: unknown;
}

/** Runs a derived query through the gateway as `identity` (Apollo Server's executeOperation). */
export type LiveExecutor = (
  query: string,
  variables: Record<string, unknown>,
  identity: Identity,
  correlationId: string,
) => Promise<ExecutionResult>;

export interface LiveHubOptions {
  readonly execute: LiveExecutor;
  /**
   * The gateway's own limits (fields, directives, depth, aliases, cost) on the query each message
   * will ask, checked when the subscription opens, so one past them is refused then, as a query
   * would be, and not accepted to fail at every event.
   */
  readonly check?: (apiSchema: GraphQLSchema, document: DocumentNode, variables: Record<string, unknown>) => readonly GraphQLError[];
  readonly registered: RegisteredOperations;
  readonly entityRefs: ReadonlyMap<string, readonly EntityRef[]>;
  readonly logger: Logger;
  readonly maxTokens: number;
}

const KEY_VARIABLE = '__concordKey';

const refused = (message: string, code = 'BAD_USER_INPUT') => new GraphQLError(message, { extensions: { code } });

/**
 * The gateway's live subscriptions: it checks a subscription as it would a query (the schema,
 * the portal's registered operations), derives the query each message answers, and on every
 * event that names a subscribed entity asks it again, as the subscriber. A subscription pushes
 * nothing when its answer is null (another customer's case, a record the role may not read) or
 * the same as its last message (an event told twice, a change that did not touch the selection).
 */
export class LiveHub {
  #schema: GraphQLSchema | null = null;
  #apiSchema: GraphQLSchema | null = null;
  readonly #byKey = new Map<string, Set<LiveSubscription>>();
  readonly #byType = new Map<string, Set<LiveSubscription>>();
  readonly #options: LiveHubOptions;

  constructor(options: LiveHubOptions) {
    this.#options = options;
  }

  /** The supergraph's API schema with the Subscription type, once the supergraph loaded (and each time it changes). */
  setSchema(apiSchema: GraphQLSchema): void {
    this.#apiSchema = apiSchema;
    this.#schema = extendSchema(apiSchema, parse(LIVE_SDL));
  }

  get size(): number {
    let count = 0;
    for (const set of this.#byType.values()) count += set.size;
    return count;
  }

  /** A subscription ready to push, or the errors that refuse it (as a query's validation would). */
  open(
    identity: Identity,
    payload: LivePayload,
  ):
    | { errors: readonly GraphQLError[] }
    | { subscription: LiveSubscription; schema: GraphQLSchema; document: DocumentNode; operationName: string | undefined } {
    const schema = this.#schema;
    if (!schema) return { errors: [refused('the gateway has not loaded its supergraph yet; subscribe again', 'SERVICE_STOPPING')] };
    if (typeof payload.query !== 'string' || payload.query.length === 0) return { errors: [refused('send the subscription in "query"')] };
    if (
      payload.variables !== undefined &&
      payload.variables !== null &&
      (typeof payload.variables !== 'object' || Array.isArray(payload.variables))
    )
      return { errors: [refused('"variables" must be an object')] };
    const text = payload.query;
    if (isCustomerScoped(identity) && !this.#options.registered.has(createHash('sha256').update(text).digest('hex')))
      return { errors: [refused('Portal identities may run only the registered portal operations', 'FORBIDDEN')] };
    let document: DocumentNode;
    try {
      document = parse(text, { maxTokens: this.#options.maxTokens });
    } catch (error) {
      return { errors: [refused((error as Error).message, 'GRAPHQL_PARSE_FAILED')] };
    }
    const invalid = validate(schema, document);
    if (invalid.length > 0)
      return {
        errors: invalid.map(
          (error) => new GraphQLError(error.message, { nodes: error.nodes, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }),
        ),
      };
    const operations = document.definitions.filter(
      (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION,
    );
    const operationName = typeof payload.operationName === 'string' ? payload.operationName : undefined;
    const operation = operationName
      ? operations.find((candidate) => candidate.name?.value === operationName)
      : operations.length === 1
        ? operations[0]
        : undefined;
    if (!operation)
      return { errors: [refused(operationName ? `no operation named ${operationName}` : 'send one operation, or name the one to run')] };
    if (operation.operation !== 'subscription')
      return { errors: [refused('this endpoint serves subscriptions; send queries and mutations to POST /graphql')] };
    const [root, ...more] = operation.selectionSet.selections;
    if (!root || more.length > 0 || root.kind !== Kind.FIELD || root.directives?.length)
      return { errors: [refused('a subscription selects exactly one field of Subscription, without directives')] };
    const field = LIVE_FIELDS.find((candidate) => candidate.name === root.name.value);
    if (!field) return { errors: [refused(`Subscription.${root.name.value} is not served`)] };
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], (payload.variables as Record<string, unknown>) ?? {});
    if (coerced.errors)
      return { errors: coerced.errors.map((error) => new GraphQLError(error.message, { extensions: { code: 'BAD_USER_INPUT' } })) };
    const fieldDef = schema.getSubscriptionType()!.getFields()[field.name]!;
    const args = getArgumentValues(fieldDef, root, coerced.coerced);
    const derived = deriveQuery(document, operation, root, field);
    const variables: Record<string, unknown> = {};
    for (const name of derived.variables) variables[name] = (payload.variables as Record<string, unknown> | undefined)?.[name];
    const limited = this.#options.check?.(this.#apiSchema!, parse(derived.text), { ...variables, [KEY_VARIABLE]: 'key' }) ?? [];
    if (limited.length > 0) return { errors: limited };
    const key = field.keyArgument ? String(args[field.keyArgument]) : null;
    const subscription = new LiveSubscription({
      field,
      key,
      filter: field.keyArgument ? null : ((args.filter as CaseFilter | undefined) ?? {}),
      identity,
      responseKey: root.alias?.value ?? root.name.value,
      query: derived.text,
      variables,
      execute: this.#options.execute,
      logger: this.#options.logger,
      forget: (closing) => this.#forget(closing),
    });
    this.#remember(subscription);
    return { subscription, schema, document, operationName: operation.name?.value };
  }

  /** Pushes what `event` changed to the subscriptions that follow it. */
  dispatch(event: CanonicalEvent): void {
    const entities = entitiesOf(event, this.#options.entityRefs);
    const due = new Set<LiveSubscription>();
    for (const [type, keys] of entities) {
      for (const key of keys) for (const subscription of this.#byKey.get(`${type}\u0000${key}`) ?? []) due.add(subscription);
      for (const subscription of this.#byType.get(type) ?? [])
        if (subscription.key === null && subscription.accepts(event, keys)) due.add(subscription);
    }
    for (const subscription of due) subscription.trigger(event, entities.get(subscription.field.entity) ?? []);
  }

  /** Ends every subscription (the gateway is stopping). */
  closeAll(): void {
    for (const set of this.#byType.values()) for (const subscription of [...set]) void subscription.return();
  }

  #remember(subscription: LiveSubscription): void {
    const { entity } = subscription.field;
    if (!this.#byType.has(entity)) this.#byType.set(entity, new Set());
    this.#byType.get(entity)!.add(subscription);
    if (subscription.key !== null) {
      const at = `${entity}\u0000${subscription.key}`;
      if (!this.#byKey.has(at)) this.#byKey.set(at, new Set());
      this.#byKey.get(at)!.add(subscription);
    }
  }

  #forget(subscription: LiveSubscription): void {
    const { entity } = subscription.field;
    this.#byType.get(entity)?.delete(subscription);
    if (subscription.key !== null) {
      const at = `${entity}\u0000${subscription.key}`;
      this.#byKey.get(at)?.delete(subscription);
      if (this.#byKey.get(at)?.size === 0) this.#byKey.delete(at);
    }
  }
}

interface CaseFilter {
  readonly status?: readonly string[] | null;
  readonly priority?: readonly string[] | null;
  readonly customerId?: string | null;
  readonly assignee?: string | null;
}

/**
 * The query a subscription's messages answer: its operation as a query, its one root field
 * replaced by the Query field that reads the entity (`caseUpdated(id: $id) { … }` becomes
 * `caseUpdated: case(id: $__concordKey) { … }`), with its fragments and the variables the
 * selection still uses.
 */
export function deriveQuery(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  root: FieldNode,
  field: LiveField,
): { text: string; variables: string[] } {
  const keyVariable = { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: KEY_VARIABLE } } as const;
  const rootField: FieldNode = {
    ...root,
    alias: { kind: Kind.NAME, value: root.alias?.value ?? root.name.value },
    name: { kind: Kind.NAME, value: field.query.field },
    arguments: [{ kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: field.query.argument }, value: keyVariable }],
  };
  const fragments = document.definitions.filter((definition) => definition.kind === Kind.FRAGMENT_DEFINITION);
  // The variables the new document still uses: the root field's own arguments are gone.
  const used = new Set<string>();
  const body = {
    kind: Kind.DOCUMENT,
    definitions: [{ ...operation, selectionSet: { ...operation.selectionSet, selections: [rootField] } }, ...fragments],
  } as DocumentNode;
  visit(body, {
    VariableDefinition: () => false,
    Variable: (node) => void used.add(node.name.value),
  });
  used.delete(KEY_VARIABLE);
  const derivedOperation: OperationDefinitionNode = {
    ...operation,
    operation: 'query' as OperationDefinitionNode['operation'],
    variableDefinitions: [
      { kind: Kind.VARIABLE_DEFINITION, variable: keyVariable, type: parseType(field.query.keyType) },
      ...(operation.variableDefinitions ?? []).filter((definition) => used.has(definition.variable.name.value)),
    ],
    selectionSet: { ...operation.selectionSet, selections: [rootField] },
  };
  return { text: print({ kind: Kind.DOCUMENT, definitions: [derivedOperation, ...fragments] }), variables: [...used] };
}

/**
 * One subscription's stream of messages. A change asks the derived query again; changes that
 * come while it is being asked are folded into one more asking, so a burst of events gives at
 * most two messages and a slow subscriber never holds more than its latest message.
 */
export class LiveSubscription implements AsyncIterableIterator<ExecutionResult> {
  readonly id = randomUUID();
  readonly field: LiveField;
  readonly key: string | null;
  readonly #options: ConstructorParameters<typeof LiveSubscription>[0];
  readonly #startedAt = Date.now();
  #last: string | null = null;
  #ready: ExecutionResult | null = null;
  #waiting: ((result: IteratorResult<ExecutionResult>) => void) | null = null;
  #asking = false;
  #again: { event: CanonicalEvent; keys: readonly string[] } | null = null;
  #closed = false;

  constructor(options: {
    field: LiveField;
    key: string | null;
    filter: CaseFilter | null;
    identity: Identity;
    responseKey: string;
    query: string;
    variables: Record<string, unknown>;
    execute: LiveExecutor;
    logger: Logger;
    forget: (subscription: LiveSubscription) => void;
  }) {
    this.#options = options;
    this.field = options.field;
    this.key = options.key;
  }

  /** For a subscription over any entity of its type: whether this event's record may match its filter. */
  accepts(event: CanonicalEvent, _keys: readonly string[]): boolean {
    const filter = this.#options.filter ?? {};
    const data = (event.data ?? {}) as Record<string, unknown>;
    const identity = this.#options.identity;
    if (isCustomerScoped(identity) && data.customerId !== identity.customerId) return false;
    if (filter.customerId && data.customerId !== filter.customerId) return false;
    if (filter.status?.length && !filter.status.includes(String(data.status))) return false;
    if (filter.priority?.length && !filter.priority.includes(String(data.priority))) return false;
    // Told by the desk's feed with the case (an event from elsewhere may not say: then the answer decides, where it shows the assignee).
    if (filter.assignee && data.assigneeId !== undefined && data.assigneeId !== filter.assignee) return false;
    return true;
  }

  trigger(event: CanonicalEvent, keys: readonly string[]): void {
    if (this.#closed) return;
    // A consumer catching up after a restart replays older events: the subscriber asked later.
    if (Date.parse(event.time) < this.#startedAt - 2_000) return;
    if (this.#asking) {
      this.#again = { event, keys };
      return;
    }
    void this.#ask(event, keys);
  }

  async #ask(event: CanonicalEvent, keys: readonly string[]): Promise<void> {
    this.#asking = true;
    try {
      for (const key of this.key !== null ? [this.key] : keys) {
        const result = await this.#options.execute(
          this.#options.query,
          { ...this.#options.variables, [KEY_VARIABLE]: key },
          this.#options.identity,
          event.correlationid,
        );
        this.#offer(result);
      }
    } catch (error) {
      this.#options.logger.warn({ err: error, subscription: this.field.name, eventId: event.id }, 'live update could not be resolved');
    } finally {
      this.#asking = false;
    }
    const again = this.#again;
    this.#again = null;
    if (again && !this.#closed) void this.#ask(again.event, again.keys);
  }

  #offer(result: ExecutionResult): void {
    const value = (result.data as Record<string, unknown> | null | undefined)?.[this.#options.responseKey];
    // Nothing to show (not this subscriber's, not visible to its role, gone): nothing is sent.
    if (value === null || value === undefined || this.#closed) return;
    if (this.#options.filter && !matchesAfter(this.#options.filter, value)) return;
    // The answer's errors are formatted already (plain objects): made GraphQLErrors again, which the transports serialize.
    const errors = ((result.errors ?? []) as ReadonlyArray<GraphQLError | GraphQLFormattedError>).map((error) =>
      error instanceof GraphQLError ? error : new GraphQLError(error.message, { path: error.path, extensions: error.extensions }),
    );
    const message: ExecutionResult = { data: { [this.#options.responseKey]: value }, ...(errors.length ? { errors } : {}) };
    const text = JSON.stringify(message);
    if (text === this.#last) return;
    this.#last = text;
    if (this.#waiting) {
      const waiting = this.#waiting;
      this.#waiting = null;
      waiting({ value: message, done: false });
    } else this.#ready = message;
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    if (this.#ready) {
      const value = this.#ready;
      this.#ready = null;
      return Promise.resolve({ value, done: false });
    }
    return new Promise((resolve) => (this.#waiting = resolve));
  }

  return(): Promise<IteratorResult<ExecutionResult>> {
    if (!this.#closed) {
      this.#closed = true;
      this.#options.forget(this);
      this.#waiting?.({ value: undefined, done: true });
      this.#waiting = null;
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    void this.return();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** The filter checked against the case as the subscriber sees it, where the selection holds the field. */
function matchesAfter(filter: CaseFilter, value: unknown): boolean {
  const record = value as Record<string, unknown>;
  if (filter.status?.length && typeof record.status === 'string' && !filter.status.includes(record.status)) return false;
  if (filter.priority?.length && typeof record.priority === 'string' && !filter.priority.includes(record.priority)) return false;
  const assignee = record.assignee as { id?: unknown } | null | undefined;
  if (filter.assignee && assignee !== undefined && (assignee === null || (assignee.id !== undefined && assignee.id !== filter.assignee)))
    return false;
  return true;
}
