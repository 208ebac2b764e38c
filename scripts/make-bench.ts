// Writes the tiny world's shipped benchmark splits: world/bench/{dev,test,select}.jsonl.
// Usage: npx tsx scripts/make-bench.ts [--check] [--out DIR]
//   --check  only compare the files with a fresh generation (exit 1 if they differ)
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeBenchmark, toJsonl, DEFAULT_BENCH_SEED, SPLITS } from '../src/world/bench.ts';
import { BENCH_FAMILIES } from '../src/world/problems.ts';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const { values } = parseArgs({ options: { check: { type: 'boolean', default: false }, out: { type: 'string', default: join(root, 'world', 'bench') } } });
const outDir = values.out as string;
const bench = makeBenchmark(DEFAULT_BENCH_SEED);
let bad = 0;
for (const split of SPLITS) {
  const text = toJsonl(bench[split]);
  const file = join(outDir, `${split}.jsonl`);
  if (values.check) {
    const same = existsSync(file) && readFileSync(file, 'utf8') === text;
    if (!same) bad++;
    console.error(`${file}: ${same ? 'up to date' : 'DIFFERS from a fresh generation'}`);
    continue;
  }
  mkdirSync(outDir, { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
  console.error(`wrote ${file} (${bench[split].length} problems)`);
}
console.log(JSON.stringify({ seed: DEFAULT_BENCH_SEED, families: BENCH_FAMILIES, dev: bench.dev.length, test: bench.test.length, select: bench.select.length, ok: bad === 0 }));
process.exit(bad === 0 ? 0 : 1);
