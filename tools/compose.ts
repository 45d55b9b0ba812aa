import { writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { composeSubgraphs, readSupergraphConfig } from './lib/composition.ts';

const HELP = `Usage: npm run compose -- [--config schema/supergraph.yaml] [--out schema/supergraph.graphql]

Composes the subgraphs listed in the supergraph config with @apollo/composition and writes the
supergraph the gateway serves. Exits 1 with the composition errors when the subgraphs disagree.`;

function main(): number {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', default: 'schema/supergraph.yaml' },
      out: { type: 'string', default: 'schema/supergraph.graphql' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const subgraphs = readSupergraphConfig(resolve(values.config));
  const outcome = composeSubgraphs(subgraphs);
  if (!outcome.ok) {
    console.error(`Composition failed with ${outcome.errors.length} error(s):\n`);
    for (const error of outcome.errors) console.error(`  ✖ ${error}\n`);
    return 1;
  }
  const out = resolve(values.out);
  writeFileSync(out, outcome.supergraphSdl.endsWith('\n') ? outcome.supergraphSdl : `${outcome.supergraphSdl}\n`);
  console.log(`Composed ${subgraphs.map((subgraph) => subgraph.name).join(', ')} into ${relative(process.cwd(), out)}`);
  for (const hint of outcome.hints) console.log(`  hint: ${hint}`);
  return 0;
}

try {
  process.exitCode = main();
} catch (error) {
  console.error(`compose: ${(error as Error).message}`);
  process.exitCode = 2;
}
