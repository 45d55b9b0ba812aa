import type { CheckReport, ClassifiedChange } from './schema-check.ts';

const LEVEL_LABEL = { breaking: 'BREAKING', dangerous: 'dangerous', safe: 'safe' } as const;

function counts(changes: readonly ClassifiedChange[]): string {
  const n = (level: ClassifiedChange['level']) => changes.filter((change) => change.level === level).length;
  return `${n('breaking')} breaking, ${n('dangerous')} dangerous, ${n('safe')} safe`;
}

function uses(change: ClassifiedChange): string {
  return change.usedBy.map((use) => `${use.operation} (${use.client})`).join(', ');
}

/** The report as a person reads it in a terminal. */
export function renderText(report: CheckReport): string {
  const lines: string[] = [`Schema check${report.base ? ` against ${report.base}` : ''}`];
  if (!report.composition.ok) {
    lines.push('  ✖ composition failed:');
    for (const error of report.composition.errors) lines.push(...indent(error, '      '));
  } else {
    lines.push('  ✔ the subgraphs compose');
    lines.push(
      report.supergraphUpToDate
        ? '  ✔ schema/supergraph.graphql is up to date'
        : '  ✖ schema/supergraph.graphql is stale: run npm run compose and commit it',
    );
    lines.push(`  Changes: ${report.changes.length ? counts(report.changes) : 'none'}`);
    for (const change of report.changes) {
      const mark = change.level === 'breaking' ? (change.usedBy.length ? '✖' : '!') : '·';
      lines.push(`    ${mark} ${LEVEL_LABEL[change.level].padEnd(9)} ${change.path.padEnd(28)} ${change.message}`);
      if (change.usedBy.length) lines.push(`      used by ${uses(change)}`);
    }
    const invalid = report.operations.filter((operation) => operation.errors.length);
    lines.push(`  Operations: ${report.operations.length} registered, ${invalid.length} invalid against the new schema`);
    for (const operation of invalid) {
      for (const error of operation.errors) lines.push(`    ✖ ${operation.operation} (${operation.client}): ${error}`);
    }
  }
  for (const warning of report.warnings) lines.push(`  warning: ${warning}`);
  lines.push(report.verdict === 'pass' ? 'PASS' : 'FAIL');
  for (const failure of report.failures) lines.push(`  - ${failure}`);
  return lines.join('\n');
}

/** The report as a pull request comment. */
export function renderMarkdown(report: CheckReport): string {
  const lines: string[] = [`### Schema check: ${report.verdict === 'pass' ? '✅ pass' : '❌ fail'}`, ''];
  if (report.base) lines.push(`Compared with ${report.base}.`, '');
  if (!report.composition.ok) {
    lines.push('**Composition failed**', '', '```', ...report.composition.errors, '```');
  } else {
    if (!report.supergraphUpToDate) lines.push('**`schema/supergraph.graphql` is stale**: run `npm run compose` and commit it.', '');
    if (report.changes.length) {
      lines.push(`**Changes**: ${counts(report.changes)}`, '', '| level | coordinate | change | used by |', '| --- | --- | --- | --- |');
      for (const change of report.changes) {
        lines.push(`| ${LEVEL_LABEL[change.level]} | \`${change.path}\` | ${escape(change.message)} | ${escape(uses(change)) || '—'} |`);
      }
      lines.push('');
    } else {
      lines.push('No changes to the API schema.', '');
    }
    const invalid = report.operations.filter((operation) => operation.errors.length);
    lines.push(`**Operations**: ${report.operations.length} registered, ${invalid.length} invalid.`);
    for (const operation of invalid)
      lines.push(...operation.errors.map((error) => `- \`${operation.operation}\` (${operation.client}): ${escape(error)}`));
  }
  if (report.failures.length) lines.push('', '**Why it fails**', '', ...report.failures.map((failure) => `- ${escape(failure)}`));
  if (report.warnings.length) lines.push('', '**Warnings**', '', ...report.warnings.map((warning) => `- ${escape(warning)}`));
  return `${lines.join('\n')}\n`;
}

/** The report as JSON, without the composed schemas (they are files, not findings). */
export function renderJson(report: CheckReport): string {
  const { composed: _composed, ...rest } = report;
  return JSON.stringify(rest, null, 2);
}

function escape(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function indent(text: string, prefix: string): string[] {
  return text.split('\n').map((line) => prefix + line);
}
