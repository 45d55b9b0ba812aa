import type { ApolloServerPlugin } from '@apollo/server';
import { createHash } from 'node:crypto';
import { BREAK, GraphQLError, Kind, parse, visit, type DocumentNode } from 'graphql';
import { CLIENT_ERROR_CODES, ErrorCode } from '../../platform/errors.ts';
import { isCustomerScoped, type Identity } from '../../platform/identity.ts';
import type { GatewayContext } from './context.ts';
import type { RegisteredOperations } from './portal.ts';

/** Longest operationName accepted; a name is an identifier, never a payload. */
export const MAX_OPERATION_NAME_CHARS = 256;
/** Longest string literal in a document; longer values belong in variables, which are not logged or cached. */
export const MAX_STRING_LITERAL_CHARS = 10_000;

export interface RequestGuardOptions {
  /** Fields (selections, counting each repetition) one document may hold: validation is quadratic in duplicates. */
  readonly maxFields: number;
  /** Directives one document may hold, known or not, counted before validation names each unknown one. */
  readonly maxDirectives: number;
}

export interface ScreenOptions extends RequestGuardOptions {
  readonly maxTokens: number;
  /** The registered portal operations, by sha256 of their text: the only ones a portal customer may send. */
  readonly registered: RegisteredOperations;
}

/** How deep a variable's value may nest (lists in lists, objects in objects). */
export const MAX_VARIABLE_DEPTH = 32;

function refused(message: string, code: string, status = 400): GraphQLError {
  return new GraphQLError(message, { extensions: { code, http: { status } } });
}

/**
 * Looks at a request's body before Apollo's pipeline parses and validates it, once the caller's
 * identity is known (it runs while the request's context is built, where a refusal keeps its
 * status and code): an over-long operationName, a document with too many fields or directives
 * or an over-long string literal, a variable nested too deep, and a portal customer's document
 * that is not one of the registered operations are refused here, before anything logs, caches,
 * validates or plans them. A document that does not parse is left to the pipeline, which says
 * why (GRAPHQL_PARSE_FAILED).
 */
export function screenRequest(body: unknown, identity: Identity, options: ScreenOptions): void {
  for (const request of Array.isArray(body) ? body : [body]) {
    if (!request || typeof request !== 'object') continue;
    const { query, operationName, variables } = request as Record<string, unknown>;
    if (typeof operationName === 'string' && operationName.length > MAX_OPERATION_NAME_CHARS)
      throw refused(`operationName is longer than ${MAX_OPERATION_NAME_CHARS} characters`, ErrorCode.BadUserInput);
    // A registered operation sent by its hash alone is looked up by the pipeline, which knows
    // no other (PERSISTED_QUERY_NOT_FOUND); a document sent in full must be one of them.
    if (
      isCustomerScoped(identity) &&
      typeof query === 'string' &&
      !options.registered.has(createHash('sha256').update(query).digest('hex'))
    )
      throw refused('Portal identities may run only the registered portal operations', ErrorCode.Forbidden, 403);
    if (variables && typeof variables === 'object') {
      for (const [name, value] of Object.entries(variables)) {
        if (depthOver(value, MAX_VARIABLE_DEPTH))
          throw refused(`Variable "$${name}" is nested deeper than ${MAX_VARIABLE_DEPTH} levels`, ErrorCode.BadUserInput);
      }
    }
    if (typeof query !== 'string') continue;
    let document: DocumentNode;
    try {
      document = parse(query, { maxTokens: options.maxTokens });
    } catch {
      continue;
    }
    const problem = documentProblem(document, options);
    if (problem) throw refused(problem, 'GRAPHQL_VALIDATION_FAILED');
  }
}

/** Whether a JSON value nests deeper than `limit`, found without recursion. */
function depthOver(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [item, depth] = stack.pop()!;
    if (!item || typeof item !== 'object') continue;
    if (depth >= limit) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * What the pipeline itself still checks: an operationName the document does not hold is refused
 * before execution (the gateway's executor would throw a plain error, masked as internal), and,
 * as the last word, an answer whose errors are all client mistakes is never a 500.
 */
export function requestGuard(): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart({ request }) {
      const name = request.operationName;
      return {
        async didResolveOperation({ operation, document }) {
          if (operation) return;
          const named = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION).length;
          throw refused(
            name
              ? `Unknown operation named "${loggedName(name)}"`
              : named > 1
                ? 'The document holds several operations: operationName must name one'
                : 'The document holds no operation',
            'OPERATION_RESOLUTION_FAILURE',
          );
        },
        async willSendResponse({ response }) {
          if (response.body.kind !== 'single' || response.http.status !== 500) return;
          const errors = response.body.singleResult.errors ?? [];
          const codes = errors.map((error) => error.extensions?.code);
          if (
            errors.length &&
            codes.every((code) => typeof code === 'string' && CLIENT_ERROR_CODES.has(code) && code !== ErrorCode.SystemUnavailable)
          )
            response.http.status = 400;
        },
      };
    },
  };
}

/** Why a parsed document is refused before validation, or null. One walk, stopped at the first limit passed. */
export function documentProblem(document: DocumentNode, options: RequestGuardOptions): string | null {
  let fields = 0;
  let directives = 0;
  let problem: string | null = null;
  const stop = (message: string) => {
    problem = message;
    return BREAK;
  };
  visit(document, {
    Field() {
      if (++fields > options.maxFields) return stop(`The operation has more than ${options.maxFields} fields`);
      return undefined;
    },
    Directive() {
      if (++directives > options.maxDirectives) return stop(`Directives limit of ${options.maxDirectives} exceeded`);
      return undefined;
    },
    StringValue(node) {
      if (node.value.length > MAX_STRING_LITERAL_CHARS)
        return stop(`A string literal is longer than ${MAX_STRING_LITERAL_CHARS} characters: pass long values as variables`);
      return undefined;
    },
  });
  return problem;
}

/** An operationName as it may appear in a log line. */
export function loggedName(name: string | null | undefined): string | undefined {
  if (typeof name !== 'string') return undefined;
  return name.length > MAX_OPERATION_NAME_CHARS ? `${name.slice(0, MAX_OPERATION_NAME_CHARS)}…` : name;
}
