/**
 * bench:eval — evaluator throughput with the builtin engine, and the loop's unit of work.
 *
 *   npm run bench:eval -- [--max-tokens 64] [--batch1-questions 20] [--baseline-questions 64] [--keep DIR]
 *
 * On a tiny Llama of the tiny world's shape (hidden 96, 3 layers, 4 heads, intermediate 256,
 * context 256, byte-level tokenizer, ~0.4M parameters, random weights — speed does not depend on
 * the weights, but a random model rarely stops early, so nearly every question costs the full
 * --max-tokens budget; tiny-world answers are ~30–70 byte tokens, so 64 is a realistic cap),
 * calculator on, tiny-world dev prompts (zero-shot):
 * - questions/s of the default decoding engine ('infer', framework-free, src/nn/infer.ts) at batch 1
 *   (first --batch1-questions dev questions), 32 and 64 (all 200 dev questions);
 * - the baseline in the same process: the previous engine ('tfjs', the framework forward with a
 *   padded KV cache) at batch 1 and 32/64 on the first --baseline-questions questions, the new engine
 *   on the same questions, the ratios, and whether both engines produced identical records;
 * - one merge (task_arithmetic of two fine-tuned-like models over a base, `runMerge`) + a dev
 *   evaluation at batch 64 from the merged folder: seconds of the Self-Developing loop's unit of work.
 * Wall-clock rates and rates per CPU-second of this process are both reported: the machine is
 * shared, so wall time depends on the other load. The final line is one JSON object.
 */
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as O from '../src/nn/ops.ts';
import { Llama, makeConfig, numParams } from '../src/nn/model.ts';
import { Tokenizer } from '../src/nn/tokenizer.ts';
import { saveModel } from '../src/nn/checkpoint.ts';
import { BuiltinBackend } from '../src/eval/backends.ts';
import { evaluate, loadProblems } from '../src/eval/evaluate.ts';
import type { EvalProblem, EvalResult } from '../src/eval/evaluate.ts';
import { inferNative } from '../src/nn/infer.ts';
import { buildPrompt } from '../src/eval/prompt.ts';
import { parseMergeConfig } from '../src/merge/config.ts';
import { runMerge } from '../src/merge/engine.ts';

const { values } = parseArgs({ options: { 'max-tokens': { type: 'string', default: '64' }, 'batch1-questions': { type: 'string', default: '20' }, 'baseline-questions': { type: 'string', default: '64' }, keep: { type: 'string' } } });
const maxTokens = Number(values['max-tokens']);
const n1 = Number(values['batch1-questions']);
const nBase = Number(values['baseline-questions']);
const root = values.keep ?? mkdtempSync(join(tmpdir(), 'selfdev-bench-eval-'));
mkdirSync(root, { recursive: true });
const log = (s: string) => process.stderr.write(s + '\n');

await O.initBackend();
const tok = new Tokenizer();
const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 96, num_attention_heads: 4, num_hidden_layers: 3, intermediate_size: 256, max_position_embeddings: 256 });
const params = numParams(cfg);
log(`model: ${params} parameters (hidden 96, 3 layers, vocab ${tok.vocabSize}), max_tokens ${maxTokens}, native kernels ${inferNative()}`);

// base + two "fine-tuned" models (base + small seeded perturbations)
const base = Llama.init(cfg, 1);
const dirs = { base: join(root, 'base'), a: join(root, 'a'), b: join(root, 'b'), merged: join(root, 'merged') };
saveModel(dirs.base, base, tok);
for (const [k, seed] of [['a', 2], ['b', 3]] as const) {
  const d = Llama.init(cfg, seed);
  const w = base.getWeights();
  const dw = d.getWeights();
  for (const [n, arr] of w) {
    const e = dw.get(n)!;
    for (let i = 0; i < arr.length; i++) arr[i] += 0.1 * e[i];
  }
  d.setWeights(w);
  saveModel(dirs[k], d, tok);
  d.dispose();
}
base.dispose();

const dev = loadProblems({ kind: 'tiny' }, 'dev');
const promptTokens = dev.reduce((a, p) => a + 1 + tok.encode(buildPrompt(p.question)).length, 0) / dev.length;
log(`dev: ${dev.length} questions, ${promptTokens.toFixed(1)} prompt tokens on average (bos included)`);
const rates: Record<string, number> = {};
/** questions per CPU-second of this process (the machine is shared; wall time is noisy). */
const cpuRates: Record<string, number> = {};
const cpu = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
};
/** Evaluate `probs` with one engine and batch size; records the wall and CPU rates under `key`. */
async function run(key: string, engine: 'infer' | 'tfjs', bs: number, probs: EvalProblem[]): Promise<EvalResult> {
  const be = await BuiltinBackend.load(dirs.base, { batchSize: bs, engine });
  const c0 = cpu();
  const r = await evaluate(be, probs, { maxTokens, calculator: true, chunk: 200 });
  rates[key] = probs.length / r.seconds;
  cpuRates[key] = probs.length / (cpu() - c0);
  log(`${engine} batch ${bs}: ${probs.length} questions in ${r.seconds.toFixed(2)} s → ${rates[key].toFixed(2)} q/s (${cpuRates[key].toFixed(2)} per CPU-s)`);
  await be.close();
  return r;
}
const same = (a: EvalResult, b: EvalResult) => a.records.every((x, i) => JSON.stringify(x) === JSON.stringify(b.records[i]));
const identical: boolean[] = [];
// warm-up (module loading, JIT) on a few questions, not timed
await run('warm', 'infer', 4, dev.slice(0, 4));
for (const bs of [1, 32, 64]) {
  const probs = dev.slice(0, bs === 1 ? n1 : nBase);
  const base = await run(`tfjs_b${bs}`, 'tfjs', bs, probs);
  const fast = await run(`infer_sub_b${bs}`, 'infer', bs, probs);
  identical.push(same(base, fast));
  if (bs > 1) await run(`infer_b${bs}`, 'infer', bs, dev);
}
rates.infer_b1 = rates.infer_sub_b1;
cpuRates.infer_b1 = cpuRates.infer_sub_b1;

// the unit of work: merge + dev evaluation
const t0 = performance.now();
const cu0 = cpu();
const config = parseMergeConfig({
  merge_method: 'task_arithmetic',
  base_model: dirs.base,
  models: [{ model: dirs.a, parameters: { weight: 0.5 } }, { model: dirs.b, parameters: { weight: 0.5 } }],
  dtype: 'float32',
}, root);
await runMerge(config, dirs.merged, { overwrite: true });
const tMerge = (performance.now() - t0) / 1000;
const be = await BuiltinBackend.load(dirs.merged, { batchSize: 64 });
const r = await evaluate(be, dev, { maxTokens, calculator: true, chunk: 200 });
await be.close();
const tUnit = (performance.now() - t0) / 1000;
const cUnit = cpu() - cu0;
log(`merge ${tMerge.toFixed(2)} s + load + dev eval ${r.seconds.toFixed(2)} s = ${tUnit.toFixed(2)} s wall, ${cUnit.toFixed(2)} CPU-s`);
if (!values.keep) rmSync(root, { recursive: true, force: true });

console.log(JSON.stringify({
  bench: 'eval',
  params,
  max_tokens: maxTokens,
  dev_questions: dev.length,
  avg_prompt_tokens: +promptTokens.toFixed(1),
  native_kernels: inferNative(),
  qps_batch1: +rates.infer_b1.toFixed(3),
  qps_batch32: +rates.infer_b32.toFixed(3),
  qps_batch64: +rates.infer_b64.toFixed(3),
  speedup_batch64_vs_1: +(rates.infer_b64 / rates.infer_b1).toFixed(2),
  q_per_cpu_s_batch1: +cpuRates.infer_b1.toFixed(3),
  q_per_cpu_s_batch32: +cpuRates.infer_b32.toFixed(3),
  q_per_cpu_s_batch64: +cpuRates.infer_b64.toFixed(3),
  baseline_questions: nBase,
  baseline_tfjs_qps_batch1: +rates.tfjs_b1.toFixed(3),
  baseline_tfjs_qps_batch32: +rates.tfjs_b32.toFixed(3),
  baseline_tfjs_qps_batch64: +rates.tfjs_b64.toFixed(3),
  vs_tfjs_batch1: +(rates.infer_sub_b1 / rates.tfjs_b1).toFixed(2),
  vs_tfjs_batch32: +(rates.infer_sub_b32 / rates.tfjs_b32).toFixed(2),
  vs_tfjs_batch64: +(rates.infer_sub_b64 / rates.tfjs_b64).toFixed(2),
  vs_tfjs_cpu_batch32: +(cpuRates.infer_sub_b32 / cpuRates.tfjs_b32).toFixed(2),
  vs_tfjs_cpu_batch64: +(cpuRates.infer_sub_b64 / cpuRates.tfjs_b64).toFixed(2),
  identical_records_vs_tfjs: identical.every(Boolean),
  merge_seconds: +tMerge.toFixed(3),
  unit_of_work_seconds: +tUnit.toFixed(3),
  unit_of_work_cpu_seconds: +cUnit.toFixed(3),
  note: 'random weights: nearly every question runs the full max_tokens; batch-1 rates and the tfjs baseline on the first questions of dev',
}));
