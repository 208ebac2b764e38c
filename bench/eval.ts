/**
 * bench:eval — evaluator throughput with the builtin engine, and the loop's unit of work.
 *
 *   npm run bench:eval -- [--max-tokens 64] [--batch1-questions 20] [--keep DIR]
 *
 * On a ~0.5M-parameter tiny Llama (byte-level tokenizer, hidden 128, 2 layers, random weights —
 * speed does not depend on the weights, but a random model never stops early, so every question
 * costs the full --max-tokens budget; tiny-world answers are ~30–70 byte tokens, so 64 is a
 * realistic cap), calculator on, tiny-world dev prompts (zero-shot):
 * - questions/s at batch 1 (on the first --batch1-questions dev questions; the rate is what matters),
 *   batch 50 and batch 200 (all 200 dev questions), and the speed-ups over batch 1;
 * - one merge (task_arithmetic of two fine-tuned-like models over a base, `runMerge`) + a dev
 *   evaluation at batch 200 from the merged folder: seconds of the Self-Developing loop's unit of work.
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
import { buildPrompt } from '../src/eval/prompt.ts';
import { parseMergeConfig } from '../src/merge/config.ts';
import { runMerge } from '../src/merge/engine.ts';

const { values } = parseArgs({ options: { 'max-tokens': { type: 'string', default: '64' }, 'batch1-questions': { type: 'string', default: '20' }, keep: { type: 'string' } } });
const maxTokens = Number(values['max-tokens']);
const n1 = Number(values['batch1-questions']);
const root = values.keep ?? mkdtempSync(join(tmpdir(), 'selfdev-bench-eval-'));
mkdirSync(root, { recursive: true });
const log = (s: string) => process.stderr.write(s + '\n');

await O.initBackend();
const tok = new Tokenizer();
const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 128, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 384, max_position_embeddings: 512 });
const params = numParams(cfg);
log(`model: ${params} parameters (hidden 128, 2 layers, vocab ${tok.vocabSize}), max_tokens ${maxTokens}`);

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
const backend = await BuiltinBackend.load(dirs.base, { batchSize: 1 });
{
  const probs = dev.slice(0, n1);
  const c0 = cpu();
  const r = await evaluate(backend, probs, { maxTokens, calculator: true });
  rates.batch1 = probs.length / r.seconds;
  cpuRates.batch1 = probs.length / (cpu() - c0);
  log(`batch 1: ${probs.length} questions in ${r.seconds.toFixed(2)} s → ${rates.batch1.toFixed(2)} q/s (${cpuRates.batch1.toFixed(2)} per CPU-s)`);
}
await backend.close();
for (const bs of [50, 200]) {
  const be = await BuiltinBackend.load(dirs.base, { batchSize: bs });
  const c0 = cpu();
  const r = await evaluate(be, dev, { maxTokens, calculator: true, chunk: 200 });
  rates[`batch${bs}`] = dev.length / r.seconds;
  cpuRates[`batch${bs}`] = dev.length / (cpu() - c0);
  log(`batch ${bs}: ${dev.length} questions in ${r.seconds.toFixed(2)} s → ${rates[`batch${bs}`].toFixed(2)} q/s (${cpuRates[`batch${bs}`].toFixed(2)} per CPU-s)`);
  await be.close();
}

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
const be = await BuiltinBackend.load(dirs.merged, { batchSize: 200 });
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
  qps_batch1: +rates.batch1.toFixed(3),
  qps_batch50: +rates.batch50.toFixed(3),
  qps_batch200: +rates.batch200.toFixed(3),
  speedup_batch50_vs_1: +(rates.batch50 / rates.batch1).toFixed(2),
  speedup_batch200_vs_1: +(rates.batch200 / rates.batch1).toFixed(2),
  q_per_cpu_s_batch1: +cpuRates.batch1.toFixed(3),
  q_per_cpu_s_batch50: +cpuRates.batch50.toFixed(3),
  q_per_cpu_s_batch200: +cpuRates.batch200.toFixed(3),
  cpu_speedup_batch200_vs_1: +(cpuRates.batch200 / cpuRates.batch1).toFixed(2),
  merge_seconds: +tMerge.toFixed(3),
  unit_of_work_seconds: +tUnit.toFixed(3),
  unit_of_work_cpu_seconds: +cUnit.toFixed(3),
  note: 'random weights: every question runs the full max_tokens; batch-1 rate from the first questions of dev',
}));
