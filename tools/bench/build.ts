import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

/**
 * Every service of a run starts from compiled JavaScript with plain `node`, as a deployment
 * runs it: Concord's gateway and the subgraphs from the repository's own production build
 * (`tsc -p tsconfig.build.json`, as `npm run build` and the Dockerfile make it), the peers'
 * entry files (tools/bench/peers) transpiled by TypeScript to plain ES modules. No TypeScript
 * loader is in any measured process.
 *
 * The output goes to a folder of its own under node_modules/.cache, inside the package, so
 * that compiled code finds the package's node_modules and its non-code files (SDL, console) the
 * way dist/ does; it is removed when the run ends.
 */
export interface Build {
  dir: string;
  /** The compiled file of a source entry point ('gateway/src/index.ts' → …/dist/gateway/src/index.js). */
  entry(source: string): string;
  /** The compiled peer file ('apollo-gateway' → …/peers/apollo-gateway.mjs). */
  peer(name: string): string;
  /** Type errors tsc reported (it compiles all the same): files being edited elsewhere may have some. */
  typeErrors: number;
  remove(): void;
}

export async function buildForBench(root: string, log: (message: string) => void): Promise<Build> {
  const dir = join(root, 'node_modules', '.cache', `concord-bench-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'peers'), { recursive: true });
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const started = performance.now();
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const output = await new Promise<{ code: number; text: string }>((resolve) => {
    execFile(
      process.execPath,
      [tsc, '-p', 'tsconfig.build.json', '--outDir', join(dir, 'dist'), '--sourceMap', 'false', '--pretty', 'false'],
      { cwd: root, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, text: `${stdout}${stderr}` }),
    );
  });
  const typeErrors = (output.text.match(/error TS\d+/g) ?? []).length;
  const entry = (source: string) => join(dir, 'dist', source.replace(/\.ts$/, '.js'));
  if (!existsSync(entry('gateway/src/index.ts'))) {
    remove();
    throw new Error(`the production build (tsc -p tsconfig.build.json) wrote no gateway:\n${output.text.slice(0, 2000)}`);
  }
  if (typeErrors)
    log(`  tsc reported ${typeErrors} type errors (compiled all the same); first: ${/.*error TS\d+.*/.exec(output.text)?.[0]}`);
  const peersDir = join(root, 'tools', 'bench', 'peers');
  for (const file of readdirSync(peersDir).filter((name) => name.endsWith('.ts'))) {
    const source = readFileSync(join(peersDir, file), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    });
    writeFileSync(join(dir, 'peers', file.replace(/\.ts$/, '.mjs')), outputText);
  }
  log(`  compiled in ${((performance.now() - started) / 1000).toFixed(1)} s into ${dir}`);
  return { dir, entry, peer: (name) => join(dir, 'peers', `${name}.mjs`), typeErrors, remove };
}
