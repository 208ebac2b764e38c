/**
 * Train the builtin algorithm factory (the offline code model the loop samples merge algorithms
 * from) into factory/model/, then measure the share of its samples that pass the sandbox cascade.
 *
 *   npm run factory:train                              # default recipe → factory/model/ (+ pass rates)
 *   npm run factory:train -- --steps 40 --out /tmp/f   # pilot
 *   npm run factory:train -- --eval-only               # re-measure the shipped model, rewrite its card
 *   options: --out DIR --steps N --programs N --batch N --lr X --k N --temps 0.7,1,1.2 --eval-seed N --no-eval
 *
 * Progress line on a TTY; the last line of stdout is JSON.
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { replaceDir } from '../src/io/checkpoint.ts';
import { generateCorpus } from '../src/factory/corpus.ts';
import {
  DEFAULT_FACTORY_RECIPE, measurePassRates, readFactoryMeta, trainFactoryModel, validateFactoryRecipe, writeFactoryMeta,
} from '../src/factory/train.ts';
import type { FactoryMeta, FactoryRecipe } from '../src/factory/train.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'factory/model' },
    steps: { type: 'string' },
    programs: { type: 'string' },
    batch: { type: 'string' },
    lr: { type: 'string' },
    k: { type: 'string', default: '48' },
    temps: { type: 'string', default: '0.7,1,1.2' },
    'eval-seed': { type: 'string', default: '2024' },
    'eval-only': { type: 'boolean', default: false },
    'no-eval': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help) {
  console.log('usage: factory-train [--out DIR] [--steps N] [--programs N] [--batch N] [--lr X] [--k N] [--temps 0.7,1,1.2] [--eval-seed N] [--eval-only | --no-eval]');
  process.exit(0);
}
const int = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return n;
};
if (values['eval-only'] && values['no-eval']) throw new Error('--eval-only and --no-eval exclude each other');
const k = int('k', values.k)!;
const evalSeed = Number(values['eval-seed']);
if (!Number.isInteger(evalSeed)) throw new Error(`--eval-seed must be an integer, got ${values['eval-seed']}`);
const temps = values.temps.split(',').map((s) => Number(s.trim()));
if (temps.length === 0 || temps.some((t) => !(t >= 0 && Number.isFinite(t)))) throw new Error(`--temps must be comma-separated numbers >= 0, got ${values.temps}`);
const out = resolve(values.out);
const tty = process.stderr.isTTY;
const status = (msg: string) => {
  if (tty) process.stderr.write(`\r${msg.padEnd(78)}`);
};
const t0 = performance.now();

let meta: FactoryMeta;
if (values['eval-only']) meta = readFactoryMeta(out);
else {
  const d = DEFAULT_FACTORY_RECIPE;
  const steps = int('steps', values.steps);
  const recipe: FactoryRecipe = {
    ...d,
    corpus: { ...d.corpus, programs: int('programs', values.programs) ?? d.corpus.programs },
    train: {
      ...d.train,
      steps: steps ?? d.train.steps,
      warmup: Math.min(d.train.warmup, Math.max(1, Math.floor((steps ?? d.train.steps) / 10))),
      batch: int('batch', values.batch) ?? d.train.batch,
      lr: values.lr !== undefined ? Number(values.lr) : d.train.lr,
    },
  };
  validateFactoryRecipe(recipe);
  const staging = join(dirname(out), `.${out.split('/').pop()}.staging-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  console.error(`training ${recipe.train.steps} steps × batch ${recipe.train.batch} on ${recipe.corpus.programs} programs → ${out}`);
  let last = 0;
  const train = await trainFactoryModel(recipe, staging, (i) => {
    if (tty) status(`step ${i.step}/${i.steps} loss ${i.loss.toFixed(4)} lr ${i.lr.toExponential(2)} ${Math.round(i.tokPerSec)} tok/s`);
    else if (i.step === i.steps || performance.now() - last > 30_000) {
      last = performance.now();
      console.error(`step ${i.step}/${i.steps} loss ${i.loss.toFixed(4)} lr ${i.lr.toExponential(2)} ${Math.round(i.tokPerSec)} tok/s`);
    }
  });
  if (tty) process.stderr.write('\n');
  console.error(`trained in ${train.seconds.toFixed(0)} s: ${train.tokens} tokens (${Math.round(train.tokens / train.seconds)} tok/s), final loss ${train.finalLoss.toFixed(4)}`);
  meta = { recipe, train, sizeBytes: statSync(join(staging, 'model.safetensors')).size };
  // ship the model first (card without pass rates), then measure and rewrite the card in place
  writeFactoryMeta(staging, meta);
  if (existsSync(out) && !existsSync(join(out, 'config.json'))) throw new Error(`${out}: exists and is not a model folder; not replacing it`);
  replaceDir(staging, out);
  console.error(`saved ${out}`);
}
const dir = out;
meta.sizeBytes = statSync(join(dir, 'model.safetensors')).size;
if (!values['no-eval']) {
  const te = performance.now();
  const corpus = generateCorpus(meta.recipe.corpus.programs, meta.recipe.corpus.seed, meta.recipe.corpus.style ?? 'varied').map((p) => p.code);
  const rates = await measurePassRates(dir, { temperatures: temps, k, seed: evalSeed, corpus, onProgress: status });
  if (tty) process.stderr.write('\n');
  meta.eval = { seed: evalSeed, maxTokens: null, rates, seconds: (performance.now() - te) / 1000 };
  for (const r of rates) {
    console.error(`T=${r.temperature}: ${r.passed}/${r.k} passed (${(100 * r.passRate).toFixed(1)} %), ${r.extracted} with code, ${r.distinct} distinct, ${r.novel} novel (${r.novelPassed} novel passed); failures ${JSON.stringify(r.failures)}`);
  }
}
writeFactoryMeta(dir, meta);
const wall = (performance.now() - t0) / 1000;
const t = meta.train;
console.log(JSON.stringify({
  out, wallSeconds: wall, programs: t.programs, params: t.params, vocab: t.vocabSize, steps: t.steps, tokens: t.tokens, exampleTokens: t.exampleTokens,
  trainSeconds: t.seconds, tokPerSec: t.tokens / t.seconds, finalLoss: t.finalLoss, sizeBytes: meta.sizeBytes,
  passRates: meta.eval?.rates.map((r) => ({ temperature: r.temperature, k: r.k, passed: r.passed, passRate: r.passRate, distinct: r.distinct, novel: r.novel, novelPassed: r.novelPassed })) ?? null,
}));
