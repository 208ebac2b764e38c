import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseCli, type Command } from './command.ts';
import { makeLlamaCheckpoint } from '../io/testing.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { loadMergeConfig } from '../merge/config.ts';
import { runMerge } from '../merge/engine.ts';
import { dot } from '../tensor/kernels.ts';

const usage = `selfdev demo [--out DIR] [--keep]

A merge demo (\`npm start\` runs \`selfdev start\`, the loop). It builds a small family of
Llama-architecture checkpoints (a seed and three fine-tunes, generated offline), merges them with
the main mergekit methods through real YAML configs and the streaming engine, re-reads and validates
every output, and prints how each merge relates to the models it came from.

Options:
  --out DIR   work folder (default: a temporary folder, removed at the end unless --keep)
  --keep      keep the work folder`;

const METHODS: Array<{ name: string; yaml: string }> = [
  { name: 'linear', yaml: 'merge_method: linear\nmodels:\n  - {model: e1, parameters: {weight: 1}}\n  - {model: e2, parameters: {weight: 1}}\n  - {model: e3, parameters: {weight: 1}}\n' },
  { name: 'task_arithmetic', yaml: 'merge_method: task_arithmetic\nbase_model: seed\nmodels:\n  - {model: e1, parameters: {weight: 0.4}}\n  - {model: e2, parameters: {weight: 0.4}}\n  - {model: e3, parameters: {weight: 0.4}}\n' },
  { name: 'ties', yaml: 'merge_method: ties\nbase_model: seed\nmodels:\n  - {model: e1, parameters: {weight: 1, density: 0.5}}\n  - {model: e2, parameters: {weight: 1, density: 0.5}}\n  - {model: e3, parameters: {weight: 1, density: 0.5}}\n' },
  { name: 'dare_ties', yaml: 'merge_method: dare_ties\nbase_model: seed\nmodels:\n  - {model: e1, parameters: {weight: 1, density: 0.5}}\n  - {model: e2, parameters: {weight: 1, density: 0.5}}\n  - {model: e3, parameters: {weight: 1, density: 0.5}}\n' },
  { name: 'breadcrumbs', yaml: 'merge_method: breadcrumbs\nbase_model: seed\nmodels:\n  - {model: e1, parameters: {weight: 1, density: 0.8}}\n  - {model: e2, parameters: {weight: 1, density: 0.8}}\n  - {model: e3, parameters: {weight: 1, density: 0.8}}\n' },
  { name: 'della', yaml: 'merge_method: della\nbase_model: seed\nmodels:\n  - {model: e1, parameters: {weight: 1, density: 0.5}}\n  - {model: e2, parameters: {weight: 1, density: 0.5}}\n  - {model: e3, parameters: {weight: 1, density: 0.5}}\n' },
  { name: 'model_stock', yaml: 'merge_method: model_stock\nbase_model: seed\nmodels: [e1, e2, e3]\n' },
  { name: 'slerp', yaml: 'merge_method: slerp\nbase_model: seed\nmodels: [e1]\nparameters: {t: [0, 0.5, 1]}\n' },
  { name: 'task_arithmetic (MLP only)', yaml: 'merge_method: task_arithmetic\nbase_model: seed\ninclude_tensors: [mlp]\nmodels:\n  - {model: e1, parameters: {weight: 0.4}}\n  - {model: e2, parameters: {weight: 0.4}}\n  - {model: e3, parameters: {weight: 0.4}}\n' },
];

function flat(dir: string): Map<string, Float32Array> {
  const c = Checkpoint.open(dir);
  try {
    return new Map(c.tensorNames().map((n) => [n, c.readF32(n)]));
  } finally {
    c.close();
  }
}

/** Cosine similarity of (a − ref) and (b − ref) over all tensors, and ‖a − ref‖ / ‖ref‖. */
function relate(a: Map<string, Float32Array>, b: Map<string, Float32Array>, ref: Map<string, Float32Array>): { cos: number; rel: number } {
  let ab = 0, aa = 0, bb = 0, rr = 0;
  for (const [name, r] of ref) {
    const da = new Float32Array(r.length), db = new Float32Array(r.length);
    const x = a.get(name)!, y = b.get(name)!;
    for (let i = 0; i < r.length; i++) {
      da[i] = x[i]! - r[i]!;
      db[i] = y[i]! - r[i]!;
    }
    ab += dot(da, db);
    aa += dot(da, da);
    bb += dot(db, db);
    rr += dot(r, r);
  }
  return { cos: aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0, rel: Math.sqrt(aa / rr) };
}

export const command: Command = {
  name: 'demo',
  summary: 'Merge demo: every main mergekit method on generated checkpoints, outputs re-read and checked.',
  usage,
  async run(args) {
    const { values } = parseCli(() => parseArgs({ args, options: { out: { type: 'string' }, keep: { type: 'boolean' } } }));
    const work = values.out ? resolve(values.out) : mkdtempSync(join(tmpdir(), 'selfdev-demo-'));
    mkdirSync(work, { recursive: true });
    const keep = values.keep || values.out !== undefined;
    try {
      const dims = { layers: 4, hidden: 128, intermediate: 344, vocab: 259, heads: 4, kvHeads: 2, dtype: 'BF16' as const };
      console.log(`selfdev demo — work folder ${work}`);
      console.log('1. building a seed model and three fine-tunes (Llama architecture, bf16, HF folders) ...');
      makeLlamaCheckpoint(join(work, 'seed'), { ...dims, seed: 1, overwrite: true, tokenizer: true });
      for (const [i, name] of ['e1', 'e2', 'e3'].entries())
        makeLlamaCheckpoint(join(work, name), { ...dims, seed: 10 + i, perturb: { from: join(work, 'seed'), scale: 0.002 }, overwrite: true, tokenizer: true });
      const seed = flat(join(work, 'seed'));
      const experts = ['e1', 'e2', 'e3'].map((e) => flat(join(work, e)));
      console.log(`2. merging with ${METHODS.length} methods through YAML configs (streaming engine) ...\n`);
      const rows: string[][] = [['method', 'seconds', '‖merge−seed‖/‖seed‖', 'cos(τ, τ_e1)', 'cos(τ, τ_e2)', 'cos(τ, τ_e3)']];
      for (const [i, m] of METHODS.entries()) {
        const cfgPath = join(work, `merge-${i}.yml`);
        writeFileSync(cfgPath, m.yaml);
        const outDir = join(work, `merged-${i}`);
        const summary = await runMerge(loadMergeConfig(cfgPath), outDir, { seed: 1, overwrite: true });
        const merged = flat(outDir); // re-read and validate the written checkpoint
        const rel = experts.map((e) => relate(merged, e, seed));
        rows.push([m.name, summary.seconds.toFixed(3), rel[0]!.rel.toExponential(2), ...rel.map((r) => r.cos.toFixed(3))]);
      }
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      for (const [i, r] of rows.entries()) {
        console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
        if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
      }
      console.log(`\nτ = merge − seed. Every merged folder is a Hugging Face checkpoint (see \`selfdev inspect\`).`);
      if (keep) console.log(`outputs kept in ${work}`);
      return 0;
    } finally {
      if (!keep) rmSync(work, { recursive: true, force: true });
    }
  },
};
