import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { z } from 'zod';
import { gatewayVariables, SUBGRAPH_URL_VARIABLES } from '../gateway/src/config.ts';
import { CONFIG_FILE_VARIABLE, ENV_FILE_VARIABLE, SERVICE_SECTIONS, type ServiceSection } from '../platform/config-file.ts';
import { fromPackageRoot } from '../platform/package-root.ts';
import { processesVariables } from '../processes/src/config.ts';
import { crmVariables } from '../subgraphs/crm/src/config.ts';
import { erpVariables } from '../subgraphs/erp/src/config.ts';
import { supportVariables } from '../subgraphs/support/src/config.ts';

/**
 * `npm run config:docs`: the configuration reference (docs/configuration.md) and the schema of
 * concord.yaml (schema/concord.schema.json), both generated from the zod schemas the services
 * validate their settings with. `--check` exits 1 when either file is out of date.
 */

const SERVICES: Record<ServiceSection, { title: string; schemas: () => readonly z.ZodObject[] }> = {
  gateway: { title: 'Gateway', schemas: gatewayVariables },
  crm: { title: 'CRM subgraph', schemas: crmVariables },
  erp: { title: 'ERP subgraph', schemas: erpVariables },
  support: { title: 'Support subgraph', schemas: supportVariables },
  processes: { title: 'Process service', schemas: processesVariables },
};

/** What the reference says about one variable. */
export interface Variable {
  readonly name: string;
  /** The services that read it, in the order of SERVICE_SECTIONS. */
  readonly services: ServiceSection[];
  readonly description: string;
  readonly defaultText: string;
  readonly accepts: string;
  /** Its schema in concord.yaml. */
  readonly jsonSchema: Record<string, unknown>;
}

interface VariableMeta {
  description?: string;
  defaultText?: string;
  list?: boolean;
}

const FLAG_WORDS = ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'];

/** A default value as the reference shows it. */
function shown(value: unknown): string {
  if (value === undefined) return 'unset';
  if (value instanceof Set) return shown([...value]);
  if (Array.isArray(value)) return `\`${value.join(',')}\``;
  if (typeof value === 'object' && value !== null)
    return `\`${Object.entries(value)
      .map(([key, inner]) => `${key}=${String(inner)}`)
      .join(',')}\``;
  return `\`${String(value)}\``;
}

/** The input a field accepts, in words, from its JSON Schema. */
function acceptsOf(schema: Record<string, unknown>, list: boolean): string {
  if (list) return 'a comma-separated list, or a YAML list';
  const values = schema.enum as unknown[] | undefined;
  if (values) {
    if (values.every((value) => FLAG_WORDS.includes(String(value)))) return 'true or false (also 1/0, yes/no, on/off)';
    return `one of ${values.map((value) => `\`${String(value)}\``).join(', ')}`;
  }
  if (schema.type === 'integer' || schema.type === 'number') {
    const noun = schema.type === 'integer' ? 'a whole number' : 'a number';
    const min = typeof schema.exclusiveMinimum === 'number' ? `above ${schema.exclusiveMinimum}` : schema.minimum;
    const max = typeof schema.maximum === 'number' && schema.maximum < Number.MAX_SAFE_INTEGER ? schema.maximum : undefined;
    if (typeof min === 'number' && max !== undefined) return `${noun} from ${min} to ${max}`;
    if (typeof min === 'number') return `${noun}, ${min} or more`;
    if (typeof min === 'string') return `${noun} ${min}`;
    return noun;
  }
  if (schema.format === 'uri') return 'an http(s) URL';
  if (typeof schema.pattern === 'string' && schema.pattern.includes('redis')) return 'a redis:// or rediss:// URL';
  if (typeof schema.minLength === 'number' && schema.minLength > 1) return `text of at least ${schema.minLength} characters`;
  return 'text';
}

/** A field's schema as concord.yaml may give it: YAML has booleans and lists where variables have text. */
function yamlSchemaOf(schema: Record<string, unknown>, meta: VariableMeta, description: string): Record<string, unknown> {
  const { $schema: _schema, defaultText: _text, list: _list, ...rest } = schema;
  const values = rest.enum as unknown[] | undefined;
  if (values?.every((value) => FLAG_WORDS.includes(String(value)))) {
    return { description, enum: [true, false, ...values] };
  }
  if (meta.list) return { description, anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] };
  return { ...rest, description };
}

/** Each service's variables, in the order its schemas declare them. */
const orderOf = new Map<ServiceSection, string[]>();

/** Every variable the services read, in the order their schemas declare them. */
export function variables(): Map<string, Variable> {
  const found = new Map<string, Variable>();
  for (const section of SERVICE_SECTIONS) {
    const order: string[] = [];
    orderOf.set(section, order);
    for (const schema of SERVICES[section].schemas()) {
      for (const [name, field] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
        if (!order.includes(name)) order.push(name);
        const meta = (z.globalRegistry.get(field) ?? {}) as VariableMeta;
        const description = meta.description;
        if (!description) throw new Error(`${name} (${section}) has no description: add .describe() or .meta() to its schema`);
        const existing = found.get(name);
        if (existing) {
          if (existing.description !== description)
            throw new Error(
              `${name} means two things: "${existing.description}" (${existing.services.join(', ')}) and "${description}" (${section})`,
            );
          if (!existing.services.includes(section)) existing.services.push(section);
          continue;
        }
        const jsonSchema = z.toJSONSchema(field, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
        const parsed = field.safeParse(undefined);
        found.set(name, {
          name,
          services: [section],
          description,
          defaultText: meta.defaultText ?? (parsed.success ? shown(parsed.data) : 'required'),
          accepts: acceptsOf(jsonSchema, meta.list === true),
          jsonSchema: yamlSchemaOf(jsonSchema, meta, description),
        });
      }
    }
  }
  return found;
}

const SUBGRAPH_URL_SCHEMA = { type: 'string', format: 'uri', description: SUBGRAPH_URL_VARIABLES.description };

/** schema/concord.schema.json: what concord.yaml may hold. */
export async function renderJsonSchema(all: Map<string, Variable> = variables()): Promise<string> {
  const properties = (entries: Variable[]) => Object.fromEntries(entries.map((variable) => [variable.name, variable.jsonSchema]));
  const list = [...all.values()];
  const sections = Object.fromEntries(
    SERVICE_SECTIONS.map((section) => [
      section,
      {
        type: ['object', 'null'],
        description: `Settings of the ${SERVICES[section].title.toLowerCase()} only, over the top level.`,
        additionalProperties: false,
        properties: properties(list.filter((variable) => variable.services.includes(section))),
        ...(section === 'gateway' ? { patternProperties: { [SUBGRAPH_URL_VARIABLES.pattern]: SUBGRAPH_URL_SCHEMA } } : {}),
      },
    ]),
  );
  const schema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'concord.yaml',
    description:
      "Concord's configuration file: the variables of docs/configuration.md, for every service at the top level or for one service in its section. Environment variables override it.",
    type: ['object', 'null'],
    additionalProperties: false,
    properties: { ...properties(list), ...sections },
    patternProperties: { [SUBGRAPH_URL_VARIABLES.pattern]: SUBGRAPH_URL_SCHEMA },
  };
  return formatted(JSON.stringify(schema), 'json', REFERENCE_FILES.jsonSchema);
}

/** Text as the repository's Prettier settings format it. */
async function formatted(text: string, parser: 'json' | 'markdown', file: string): Promise<string> {
  const options = (await prettier.resolveConfig(fromPackageRoot(file))) ?? {};
  return prettier.format(text, { ...options, parser });
}

const INTRO = `# Configuration

This reference is generated from the schemas the services validate their settings with
(\`npm run config:docs\`); a test fails when it is out of date.

Each service reads its settings once, at start, and checks all of them: a value it cannot start
with stops it with exit code 78 and a message that names the variable, the value, and the file
it came from. Nothing is read again while a service runs (the supergraph, with
\`SUPERGRAPH_WATCH\`, is the exception).

## Where settings come from

Every setting is a variable with one name, wherever it is given. Weakest first:

1. the defaults below;
2. **\`concord.yaml\`**, optional: variables at its top level apply to every service; a section
   \`gateway:\`, \`crm:\`, \`erp:\` or \`support:\` holds variables for that service only, over the
   top level (a \`LOG_LEVEL\` for one service, say). [\`concord.example.yaml\`](../concord.example.yaml)
   shows the shape; [\`schema/concord.schema.json\`](../schema/concord.schema.json) is its JSON Schema,
   for editors (\`# yaml-language-server: $schema=schema/concord.schema.json\`);
3. **\`.env\`**, optional, for development: \`NAME=value\` lines. It is not read where
   \`CONCORD_ENV=production\` comes from the environment or \`concord.yaml\`, so a stray file
   never configures production;
4. **environment variables**, which win over everything. An empty variable counts as unset.

The file is \`./concord.yaml\` in the working directory, or the one \`${CONFIG_FILE_VARIABLE}\` names (which
must then exist); the development file is \`./.env\`, or the one \`${ENV_FILE_VARIABLE}\` names. \`npm start\`
hands both to the services it starts.

In \`concord.yaml\`, a value may be text, a number, \`true\`/\`false\` or, for lists, a YAML list. A key
that no service reads stops the start (a typo would otherwise be ignored silently), and so does a key
in a section whose service does not read it. Values are checked by the same schemas as variables.

\`\`\`yaml
CONCORD_ENV: production
LOG_LEVEL: info
gateway:
  GATEWAY_PORT: 4000
  CACHE_STORE: redis
  CACHE_REDIS_URL: redis://cache:6379
  CORS_ORIGINS: [https://portal.example.com]
erp:
  LOG_LEVEL: debug
\`\`\`
`;

/** One variable as a list item. */
function item(variable: Variable, section: ServiceSection | null): string {
  const others = section ? variable.services.filter((service) => service !== section) : [];
  const names = others.map((service) =>
    service === 'gateway' ? 'the gateway' : service === 'processes' ? 'the process service' : `the ${service} subgraph`,
  );
  const also = names.length ? ` Also read by ${names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : names[0]}.` : '';
  return `- **\`${variable.name}\`**: ${variable.description} Default: ${variable.defaultText}. Accepts ${variable.accepts}.${also}`;
}

/** docs/configuration.md, formatted as the repository formats Markdown. */
export async function renderReference(all: Map<string, Variable> = variables()): Promise<string> {
  const list = [...all.values()];
  const everywhere = list.filter((variable) => variable.services.length === SERVICE_SECTIONS.length);
  const parts = [INTRO, '## Every service\n', everywhere.map((variable) => item(variable, null)).join('\n'), ''];
  for (const section of SERVICE_SECTIONS) {
    const own = (orderOf.get(section) ?? [])
      .map((name) => all.get(name)!)
      .filter((variable) => variable.services.length < SERVICE_SECTIONS.length);
    parts.push(`## ${SERVICES[section].title} (\`${section}:\`)\n`);
    const lines = own.map((variable) => item(variable, section));
    if (section === 'gateway')
      lines.push(
        `- **\`${SUBGRAPH_URL_VARIABLES.name}\`**: ${SUBGRAPH_URL_VARIABLES.description} Default: ${SUBGRAPH_URL_VARIABLES.defaultText}. Accepts an http(s) URL; a name the supergraph does not have stops the start.`,
      );
    parts.push(lines.join('\n'), '');
  }
  return formatted(parts.join('\n'), 'markdown', REFERENCE_FILES.reference);
}

export const REFERENCE_FILES = { reference: 'docs/configuration.md', jsonSchema: 'schema/concord.schema.json' } as const;

async function main(argv: readonly string[]): Promise<number> {
  const all = variables();
  const generated = { [REFERENCE_FILES.reference]: await renderReference(all), [REFERENCE_FILES.jsonSchema]: await renderJsonSchema(all) };
  const stale: string[] = [];
  for (const [file, text] of Object.entries(generated)) {
    const path = fromPackageRoot(file);
    let current = '';
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      current = '';
    }
    if (current === text) continue;
    if (argv.includes('--check')) stale.push(file);
    else {
      writeFileSync(path, text);
      console.log(`wrote ${file}`);
    }
  }
  if (stale.length) {
    console.error(`out of date: ${stale.join(', ')} (npm run config:docs writes them)`);
    return 1;
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
