/**
 * bench:dpo — DPO of the shipped builtin factory (factory/model, 0.86M parameters) on preference
 * pairs of seed-corpus programs, with the native engine (src/nn/train-native.ts) and the tfjs
 * baseline in the same process.
 *
 *   npm run bench:dpo -- [--steps 4] [--pairs 16] [--batch 4] [--max-len 800] [--threads 2]
 *
 * The pairs are the loop's shape: the factory's header as the prompt, two canonical corpus programs
 * (~250–450 tokens each) as chosen and rejected. Both engines start from the same weights and
 * reference, use the same data order, and report per step; the bench prints seconds (reference
 * log-probs + steps), tokens/s, the speed ratio native / tfjs, and the largest relative difference
 * of the per-step losses. The final line is one JSON object.
 */
import { parseArgs } from 'node:util';
import { initBackend, loadModel, dpoTrain } from '../src/nn/index.ts';
import { setThreads } from '../src/tensor/kernels.ts';
import { generateCorpus, trainingExample } from '../src/factory/corpus.ts';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '4' }, pairs: { type: 'string', default: '16' }, batch: { type: 'string', default: '4' }, 'max-len': { type: 'string', default: '800' }, threads: { type: 'string', default: '2' } } });
const steps = Number(values.steps);
const nPairs = Number(values.pairs);
const batch = Number(values.batch);
const maxLen = Number(values['max-len']);
setThreads(Number(values.threads));
await initBackend();

const programs = generateCorpus(2 * nPairs, 11, 'canonical').map((p) => trainingExample(p.code));
const pairs = Array.from({ length: nPairs }, (_, i) => ({ prompt: programs[2 * i].prompt, chosen: programs[2 * i].completion, rejected: programs[2 * i + 1].completion }));

const run = (engine: 'native' | 'tfjs') => {
  const pol = loadModel('factory/model');
  const ref = loadModel('factory/model');
  const t0 = performance.now();
  const logs = dpoTrain(pol.model, pol.tokenizer!, pairs, { steps, lr: 2e-4, batchSize: batch, beta: 0.1, nllAlpha: 1, seed: 1, maxLen, engine, progress: false }, ref.model);
  const seconds = (performance.now() - t0) / 1000;
  pol.model.dispose();
  ref.model.dispose();
  return { seconds, losses: logs.map((l) => l.loss) };
};

// tokens processed: reference pass over every pair + forward/backward of `steps` batches (2 rows each pair)
const { model, tokenizer } = loadModel('factory/model');
const len = (s: string) => Math.min(maxLen, tokenizer!.encode(s).length + 2);
const perPair = pairs.map((p) => len(p.prompt + p.chosen) + len(p.prompt + p.rejected));
model.dispose();
const stepTokens = (perPair.reduce((a, b) => a + b, 0) / nPairs) * batch * steps;

const native = run('native');
console.log(`native: ${native.seconds.toFixed(2)} s, losses ${native.losses.map((l) => l.toFixed(5)).join(' ')}`);
const tfjs = run('tfjs');
console.log(`tfjs:   ${tfjs.seconds.toFixed(2)} s, losses ${tfjs.losses.map((l) => l.toFixed(5)).join(' ')}`);
const maxRelLossDiff = Math.max(...native.losses.map((l, i) => Math.abs(l - tfjs.losses[i]) / Math.max(1e-6, Math.abs(tfjs.losses[i]))));
console.log(JSON.stringify({
  bench: 'dpo', model: 'factory/model', steps, pairs: nPairs, batch, maxLen,
  nativeSeconds: +native.seconds.toFixed(3), tfjsSeconds: +tfjs.seconds.toFixed(3), speedup: +(tfjs.seconds / native.seconds).toFixed(2),
  nativeStepTokPerSec: Math.round(stepTokens / native.seconds), tfjsStepTokPerSec: Math.round(stepTokens / tfjs.seconds),
  maxRelLossDiff: +maxRelLossDiff.toExponential(2),
}));
