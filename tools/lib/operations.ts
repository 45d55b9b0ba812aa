import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  Kind,
  TypeInfo,
  getNamedType,
  parse,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';

/** A client operation registered under schema/operations/<client>/<Name>.graphql. */
export interface RegisteredOperation {
  client: string;
  name: string;
  file: string;
  document: DocumentNode;
}

/**
 * Reads every registered operation: one folder per client, one or more named operations per
 * file (fragments may sit beside them). A file that does not parse is reported by name.
 */
export function loadOperations(dir: string): RegisteredOperation[] {
  const operations: RegisteredOperation[] = [];
  for (const client of readdirSync(dir).sort()) {
    const clientDir = join(dir, client);
    if (!statSync(clientDir).isDirectory()) continue;
    for (const fileName of readdirSync(clientDir).sort()) {
      if (!fileName.endsWith('.graphql')) continue;
      const file = join(clientDir, fileName);
      let document: DocumentNode;
      try {
        document = parse(readFileSync(file, 'utf8'));
      } catch (error) {
        throw new Error(`${client}/${fileName} does not parse: ${(error as Error).message}`);
      }
      const named = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
      for (const definition of named) {
        operations.push({ client, name: definition.name?.value ?? basename(fileName, '.graphql'), file, document });
      }
    }
  }
  return operations;
}

/**
 * The schema coordinates an operation touches in `schema`: every type it reads or sends
 * (`Order`, `CaseStatus`), every field it selects (`Order.status`) and every argument it passes
 * (`Query.cases.first`). Anything `schema` does not know is left out.
 */
export function coordinatesUsed(document: DocumentNode, schema: GraphQLSchema): Set<string> {
  const used = new Set<string>();
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field() {
        const parent = typeInfo.getParentType();
        const field = typeInfo.getFieldDef();
        if (!parent || !field) return;
        used.add(parent.name);
        used.add(`${parent.name}.${field.name}`);
        used.add(getNamedType(field.type).name);
      },
      Argument() {
        const parent = typeInfo.getParentType();
        const field = typeInfo.getFieldDef();
        const argument = typeInfo.getArgument();
        if (!parent || !field || !argument) return;
        used.add(`${parent.name}.${field.name}.${argument.name}`);
        used.add(getNamedType(argument.type).name);
      },
      ObjectField(node) {
        const input = typeInfo.getParentInputType();
        const type = typeInfo.getInputType();
        if (input) used.add(`${getNamedType(input).name}.${node.name.value}`);
        if (type) used.add(getNamedType(type).name);
      },
      VariableDefinition() {
        const type = typeInfo.getInputType();
        if (type) used.add(getNamedType(type).name);
      },
      InlineFragment() {
        const type = typeInfo.getType();
        if (type) used.add(getNamedType(type).name);
      },
    }),
  );
  return used;
}
