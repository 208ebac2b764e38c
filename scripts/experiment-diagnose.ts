/**
 * What each arm of one or more experiment folders spent its budget on and what its pairs taught
 * (src/report/diagnose.ts): per arm and iteration, summed or averaged over the repeats.
 *
 *   npm run experiment:diagnose -- DIR [DIR …] [--corpus N] [--json FILE]
 *
 * Folders are pooled by arm name (e.g. an experiment with dpo,random,evolution and another with the
 * DPO variants on the same config and seeds). Prints a markdown table; the last line is JSON.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { diagnoseRuns, experimentRuns, formatDiagnosis } from '../src/report/diagnose.ts';

const { values, positionals } = parseArgs({
  options: { corpus: { type: 'string', default: '1200' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  allowPositionals: true,
});
if (values.help || positionals.length === 0) {
  process.stdout.write('usage: npm run experiment:diagnose -- DIR [DIR …] [--corpus N] [--json FILE]\n');
  process.exit(values.help ? 0 : 2);
}
const corpus = Number(values.corpus);
if (!(Number.isInteger(corpus) && corpus >= 1)) {
  process.stderr.write(`--corpus must be a positive integer, got '${values.corpus}'\n`);
  process.exit(2);
}
const rows = diagnoseRuns(positionals.flatMap((d) => experimentRuns(d)), corpus);
process.stdout.write(formatDiagnosis(rows) + '\n');
if (values.json) writeFileSync(values.json, JSON.stringify(rows, null, 1) + '\n');
process.stdout.write(JSON.stringify({ rows: rows.length, arms: [...new Set(rows.map((r) => r.arm))] }) + '\n');
