/**
 * Local check, never in CI: the engine against PyTorch on tiny seeded Mistral-, Qwen2- and
 * Llama-3-shaped checkpoints (src/nn/arch-testing.ts). For each architecture it writes the folder
 * under .bench/torch-compare/, runs scripts/torch-compare.py on it with /usr/bin/python3
 * (transformers when installed, else the script's own plain-torch implementation) and the engine
 * (infer.ts, native kernels when built), and prints max |Δlogit| over every prompt position and the
 * greedy agreement.
 *
 *   node --import tsx scripts/torch-compare.ts [--seed N] [--steps N] [--python PATH]
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as O from '../src/nn/ops.ts';
import { loadModel } from '../src/nn/checkpoint.ts';
import { InferModel, inferNative } from '../src/nn/infer.ts';
import { generateIds } from '../src/nn/generate.ts';
import { makeArchCheckpoint, TEST_ARCHS } from '../src/nn/arch-testing.ts';
import { Rng } from '../src/io/testing.ts';

const { values } = parseArgs({ options: { seed: { type: 'string', default: '11' }, steps: { type: 'string', default: '24' }, python: { type: 'string', default: '/usr/bin/python3' } } });
const seed = Number(values.seed);
const steps = Number(values.steps);
if (!Number.isInteger(seed) || !Number.isInteger(steps) || steps < 1) throw new Error('torch-compare: --seed and --steps must be integers (steps ≥ 1)');
const root = resolve(import.meta.dirname, '..');
const out = join(root, '.bench', 'torch-compare');
await O.initBackend();

const rows: string[] = [];
for (const arch of TEST_ARCHS) {
  const dir = join(out, arch);
  rmSync(dir, { recursive: true, force: true });
  const cfg = makeArchCheckpoint(dir, arch, { seed, maxShardBytes: arch === 'qwen2' ? 40_000 : undefined });
  const rng = new Rng(seed * 31 + arch.length);
  const prompt = [cfg.bos_token_id, ...Array.from({ length: 31 }, () => 3 + Math.floor(rng.uniform() * (cfg.vocab_size - 3)))];
  const py = JSON.parse(execFileSync(values.python!, [join(root, 'scripts', 'torch-compare.py'), dir, JSON.stringify(prompt), String(steps)], { encoding: 'utf8', maxBuffer: 1 << 28 })) as {
    impl: string;
    torch: string;
    logits: number[][];
    greedy: number[];
  };
  const { model, tokenizer } = loadModel(dir);
  const im = InferModel.of(model);
  const s = im.session(1, prompt.length);
  let maxAbs = 0;
  let maxLogit = 0;
  let argmaxAgree = 0;
  prompt.forEach((t, i) => {
    const l = s.feed([0], [[t]]);
    const r = py.logits[i]!;
    let a = 0;
    let b = 0;
    for (let v = 0; v < l.length; v++) {
      maxAbs = Math.max(maxAbs, Math.abs(l[v]! - r[v]!));
      maxLogit = Math.max(maxLogit, Math.abs(r[v]!));
      if (l[v]! > l[a]!) a = v;
      if (r[v]! > r[b]!) b = v;
    }
    if (a === b) argmaxAgree++;
  });
  const g = generateIds(model, tokenizer!, [prompt], { maxTokens: steps })[0]!.ids;
  let same = 0;
  while (same < Math.min(g.length, py.greedy.length) && g[same] === py.greedy[same]) same++;
  const greedyOk = same === g.length && same === py.greedy.length;
  model.dispose();
  rows.push(
    `${arch.padEnd(8)} ${py.impl.padEnd(14)} window ${String(cfg.sliding_window ?? '-').padEnd(3)} positions ${prompt.length}  max |Δlogit| ${maxAbs.toExponential(2)} (max |logit| ${maxLogit.toFixed(2)})  argmax agree ${argmaxAgree}/${prompt.length}  greedy ${greedyOk ? 'equal' : 'DIFFER'} ${same}/${Math.max(g.length, py.greedy.length)} tokens`,
  );
}
console.log(`engine: ${inferNative() ? 'native' : 'JS'} kernels; PyTorch via ${values.python}`);
for (const r of rows) console.log(r);
