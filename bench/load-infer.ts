/**
 * `node --import tsx bench/load-infer.ts [MODEL_DIR] [--rows 4] [--prompt 64] [--steps 8]`: loads a
 * model folder straight into the inference engine (checkpoint.ts `loadInferModel`, what
 * `selfdev serve` and `selfdev eval` do) and prints one JSON line: parameters, load seconds, the
 * process's peak RSS (VmHWM from /proc/self/status) and RSS before the load, the engine's weight
 * bytes per parameter, and the decoding speed at that size: one prefill of `rows` prompts of
 * `prompt` random tokens, then `steps` single-token steps. Default folder: the synthetic 1.49B seed
 * of `npm run bench:scale -- --params-b 1.5` (.bench/scale-1.5b/seed). Read-only on the folder.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadInferModel } from '../src/nn/checkpoint.ts';
import { numParams } from '../src/nn/model.ts';
import { Rng } from '../src/nn/rng.ts';

const { values, positionals } = parseArgs({
  options: { rows: { type: 'string', default: '4' }, prompt: { type: 'string', default: '64' }, steps: { type: 'string', default: '8' } },
  allowPositionals: true,
});
const dir = resolve(positionals[0] ?? join(import.meta.dirname, '..', '.bench', 'scale-1.5b', 'seed'));
const GiB = 2 ** 30;
const status = (key: string): number => {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`/proc/self/status has no ${key}`);
  return Number(m[1]) * 1024;
};

const rssBefore = status('VmRSS');
const t0 = performance.now();
const { model, config } = loadInferModel(dir, { tokenizer: 'none' });
const loadSeconds = (performance.now() - t0) / 1000;
const peakLoad = status('VmHWM');
const params = numParams(config);

const rows = Number(values.rows);
const P = Number(values.prompt);
const steps = Number(values.steps);
const rng = new Rng(1);
const prompts = Array.from({ length: rows }, () => Array.from({ length: P }, () => Math.floor(rng.next() * config.vocab_size)));
const s = model.session(rows, P + steps);
const ids = prompts.map((_, i) => i);
let t = performance.now();
s.feed(ids, prompts);
const prefill = (performance.now() - t) / 1000;
t = performance.now();
for (let k = 0; k < steps; k++) s.feed(ids, ids.map((i) => [(i * 7 + k) % config.vocab_size]));
const perStep = (performance.now() - t) / 1000 / steps;

console.log(JSON.stringify({
  model_dir: dir,
  params,
  native: model.native,
  load_seconds: +loadSeconds.toFixed(2),
  rss_before_load_gib: +(rssBefore / GiB).toFixed(3),
  peak_rss_after_load_gib: +(peakLoad / GiB).toFixed(3),
  peak_rss_load_bytes_per_param: +(peakLoad / params).toFixed(3),
  weight_bytes_per_param: +(model.weightBytes() / params).toFixed(4),
  prefill_seconds: +prefill.toFixed(2),
  prefill_tokens: rows * P,
  decode_seconds_per_step: +perStep.toFixed(3),
  decode_rows: rows,
  peak_rss_gib: +(status('VmHWM') / GiB).toFixed(3),
  load_average_1m: +loadavg()[0]!.toFixed(1),
}));
