/**
 * `npm run bench:scale -- --params-b 1.5`: the loop's streamed merge world at scale.
 *
 * Builds (or reuses, under .bench/scale-<P>b/) a synthetic bf16 Llama/Mistral-shaped seed + 3
 * experts of about P billion parameters (hidden 2048, MLP 7168, 8 kv heads, vocab 32000, layers
 * chosen to reach P; values from a seeded xorshift, experts = seed + small noise; written in 2 GB
 * shards). Then, in this one run:
 *   - the loop's merge path (StreamWorld.open → validateAlgorithm → makeFileMergeFunction →
 *     StreamWorld.write into a served folder) with a TA program and a TIES-style program
 *     (algorithms/task_arithmetic.js, algorithms/ties.js) in the sandbox; peak RSS of this process
 *     tree (this process + the sandbox child) sampled from /proc every 50 ms;
 *   - the same TA formula through `selfdev merge` as a child process: the builtin task_arithmetic
 *     (weight 0.4 per expert) and `merge_method: custom` with the same program file;
 *   - the merged tensors compared byte for byte with the CLI's outputs;
 *   - this machine's memcpy bandwidth (Buffer.copy of 256 MiB), the reference for "memory speed".
 * The last line is one JSON object. `--clean` deletes the synthetic models and outputs at the end.
 * `--out DIR` puts the merged outputs there instead of <world>/out (a world shared read-only);
 * `--custom-layers N` runs the slow `selfdev merge` custom comparison on the MLP tensors of the
 * first N layers only (identical_to_cli then covers those, `identical_to_cli_tensors` says how many;
 * 0 skips it). `--repeat N` times the TA program and `selfdev merge` task_arithmetic N times each,
 * alternately (machine load varies from minute to minute on a shared VM): merge_seconds.ta,
 * cli_merge_seconds and ta_time_vs_cli are then medians, every run in ta_seconds_runs / cli_seconds_runs.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runSelfdevMerge, treeRss } from './proc-rss.ts';
import { Checkpoint, CheckpointWriter } from '../src/io/checkpoint.ts';
import { llamaConfig, llamaTensors, fixtureTokenizerJson } from '../src/io/testing.ts';
import { encodeFromF32 } from '../src/tensor/dtype.ts';
import { Sandbox, validateAlgorithm, makeFileMergeFunction, tensorLayer } from '../src/sandbox/index.ts';
import { StreamWorld, defaultMaxMergeMemory, streamLimits, PROCESS_OVERHEAD_BYTES } from '../src/merge/stream-world.ts';

const { values } = parseArgs({ options: { 'params-b': { type: 'string', default: '1.5' }, dir: { type: 'string' }, clean: { type: 'boolean', default: false }, 'build-only': { type: 'boolean', default: false }, 'time-scale': { type: 'string', default: '1' }, 'no-cli': { type: 'boolean', default: false }, tensors: { type: 'string', default: 'mlp' }, programs: { type: 'string', default: 'ta,ties' }, out: { type: 'string' }, 'custom-layers': { type: 'string' }, repeat: { type: 'string', default: '1' } } });
const P = Number(values['params-b']) * 1e9;
if (!(P >= 1e7 && P <= 2e10)) throw new Error(`--params-b must be between 0.01 and 20, got ${values['params-b']}`);
const ROOT = resolve(import.meta.dirname, '..');
const dir = resolve(values.dir ?? join(ROOT, '.bench', `scale-${values['params-b']}b`));
const GiB = 2 ** 30;
const log = (s: string) => console.error(`[bench:scale] ${s}`);

// ------------------------------------------------------------------------------ synthetic world

const hidden = 2048, intermediate = 7168, heads = 16, kvHeads = 8, vocab = 32000;
const perLayer = 2 * hidden * hidden + 2 * hidden * (kvHeads * (hidden / heads)) + 3 * hidden * intermediate + 2 * hidden;
const layers = Math.max(1, Math.round((P - 2 * vocab * hidden - hidden) / perLayer));
const shape = { layers, hidden, intermediate, vocab, heads, kvHeads, dtype: 'BF16' as const };
const spec = { version: 1, ...shape, seed: 1234, noise: 0.002 };

/** Deterministic fill: xorshift32 uniform in [-scale, scale) (+ `add` elementwise when given). */
function fill(out: Float32Array, seed: number, scale: number, add?: Float32Array): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const u = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
    out[i] = add ? add[i]! + u : u;
  }
}
function hashName(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h;
}

function buildWorld(): { seed: string; experts: string[]; params: number } {
  const seedDir = join(dir, 'seed');
  const experts = [1, 2, 3].map((i) => join(dir, `expert-${i}`));
  const tensors = llamaTensors(shape);
  const params = tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const specFile = join(dir, 'spec.json');
  const same = existsSync(specFile) && readFileSync(specFile, 'utf8') === JSON.stringify(spec) && [seedDir, ...experts].every((d) => existsSync(join(d, 'config.json')));
  if (same) {
    log(`reusing ${dir} (${(params / 1e9).toFixed(3)}B params per model)`);
    return { seed: seedDir, experts, params };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const maxNumel = Math.max(...tensors.map((t) => t.shape.reduce((a, b) => a * b, 1)));
  const base = new Float32Array(maxNumel);
  const x = new Float32Array(maxNumel);
  const writers = [seedDir, ...experts].map((d) => new CheckpointWriter(d, { maxShardBytes: 2e9 }));
  writers.forEach((w) => w.plan(tensors));
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const b = base.subarray(0, n);
    fill(b, hashName(spec.seed, t.name), t.name.endsWith('norm.weight') ? 0 : 0.04);
    if (t.name.endsWith('norm.weight')) for (let i = 0; i < n; i++) b[i] = 1 + b[i]!;
    writers[0]!.write(t.name, encodeFromF32(b, 'BF16'));
    for (let e = 1; e <= 3; e++) {
      const xe = x.subarray(0, n);
      fill(xe, hashName(spec.seed + e, t.name), spec.noise, b);
      writers[e]!.write(t.name, encodeFromF32(xe, 'BF16'));
    }
  }
  for (const w of writers) {
    w.writeJson('config.json', { ...llamaConfig(shape), architectures: ['MistralForCausalLM'], model_type: 'mistral' });
    w.writeJson('tokenizer.json', JSON.parse(fixtureTokenizerJson(vocab)));
    w.commit();
  }
  writeFileSync(specFile, JSON.stringify(spec));
  log(`built seed + 3 experts (${(params / 1e9).toFixed(3)}B params each, ${layers} layers) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { seed: seedDir, experts, params };
}

// ------------------------------------------------------------------------------ measurement


/** Peak tree RSS of `pid` while `fn` runs. */
async function withPeak<T>(pid: () => number, fn: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = 0;
  const timer = setInterval(() => {
    const p = pid();
    if (p > 0) peak = Math.max(peak, treeRss(p));
  }, 50);
  try {
    const value = await fn();
    return { value, peak: Math.max(peak, pid() > 0 ? treeRss(pid()) : 0) };
  } finally {
    clearInterval(timer);
  }
}

function memcpyGBs(): number {
  const a = Buffer.alloc(256 * 2 ** 20, 1);
  const b = Buffer.alloc(a.length);
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    a.copy(b);
    best = Math.min(best, performance.now() - t0);
  }
  return a.length / 1e9 / (best / 1000);
}

const runCli = (cfgFile: string, out: string) => runSelfdevMerge(ROOT, cfgFile, out);

/** Whether every merged (selected) tensor of `a` equals `b`'s byte for byte; also the count of differing tensors. */
function compare(a: string, b: string, names: string[]): { identical: boolean; differing: number } {
  const A = Checkpoint.open(a);
  const B = Checkpoint.open(b);
  let differing = 0;
  try {
    for (const n of names) if (!Buffer.from(A.readBytes(n)).equals(Buffer.from(B.readBytes(n)))) differing++;
  } finally {
    A.close();
    B.close();
  }
  return { identical: differing === 0, differing };
}

// ------------------------------------------------------------------------------ main

const world = buildWorld();
if (values['build-only']) process.exit(0);
const bw = memcpyGBs();
log(`memcpy ${bw.toFixed(2)} GB/s; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
const maxMem = defaultMaxMergeMemory(totalmem());
const timeScale = Number(values['time-scale']);
const sw = StreamWorld.open(world.seed, world.experts, values.tensors!, { maxMemoryBytes: maxMem, timeScale });
const mergedParams = sw.names.reduce((s, n) => s + sw.shapeOf(n).reduce((a, b) => a * b, 1), 0);
const bound = sw.memoryBound();
log(`${sw.names.length} merged tensors (${(mergedParams / 1e6).toFixed(0)}M params, largest ${sw.maxNumel.toLocaleString('en-US')}); bound ${(bound.bytes / GiB).toFixed(2)} GiB`);
const sandbox = new Sandbox();
await sandbox.start();
const programs: Record<string, string> = { ta: 'task_arithmetic', ties: 'ties' };
const results: Record<string, { seconds: number; mparams_per_s: number; peak_rss_gib: number; out: string }> = {};
const outRoot = resolve(values.out ?? join(dir, 'out'));
const customLayers = values['custom-layers'] === undefined ? null : Number(values['custom-layers']);
if (customLayers !== null && !(Number.isInteger(customLayers) && customLayers >= 0 && customLayers <= layers)) throw new Error(`--custom-layers must be an integer from 0 to ${layers}, got ${values['custom-layers']}`);
const repeat = Number(values.repeat);
if (!(Number.isInteger(repeat) && repeat >= 1 && repeat <= 50)) throw new Error(`--repeat must be an integer from 1 to 50, got ${values.repeat}`);
mkdirSync(outRoot, { recursive: true });
async function mergeProgram(key: string): Promise<{ seconds: number; out: string }> {
  const file = join(ROOT, 'algorithms', `${programs[key] ?? key}.js`);
  const source = readFileSync(file, 'utf8');
  const out = join(outRoot, `served-${key}`);
  rmSync(out, { recursive: true, force: true });
  const { value, peak } = await withPeak(
    () => process.pid,
    async () => {
      const t0 = performance.now();
      const v = await validateAlgorithm(source, { sandbox, seed: 7 });
      if (!v.ok) throw new Error(`${file} rejected: ${v.message}`);
      const fn = makeFileMergeFunction(source, sandbox, { stats: v.hasPrepare ? sw.stats() : undefined, seed: 7, limits: sw.limits() });
      const t1 = performance.now();
      const s = await sw.write(out, { kind: 'program', fn, seed: 7 });
      return { validateS: (t1 - t0) / 1000, ...s };
    },
  );
  const prev = results[key];
  results[key] = { seconds: value.seconds, mparams_per_s: mergedParams / 1e6 / value.seconds, peak_rss_gib: prev?.peak_rss_gib ?? peak / GiB, out }; // a repeat's peak would include what the previous program left in the sandbox child's pool
  log(`${key}: validate ${value.validateS.toFixed(1)} s, merge+write ${value.seconds.toFixed(1)} s (${(mergedParams / 1e6 / value.seconds).toFixed(1)} M merged params/s), peak tree RSS ${(peak / GiB).toFixed(2)} GiB`);
  return { seconds: value.seconds, out };
}
for (const key of values.programs!.split(',')) await mergeProgram(key);

// the same formula through `selfdev merge`
const models = world.experts.map((m) => `  - model: ${m}\n    parameters: { weight: 0.4 }`).join('\n');
const builtinCfg = join(outRoot, 'ta-builtin.yml');
writeFileSync(builtinCfg, `merge_method: task_arithmetic\nbase_model: ${world.seed}\nparameters: { normalize: false }\ninclude_tensors: ['.mlp.']\nmodels:\n${models}\n`);
const customCfg = join(outRoot, 'ta-custom.yml');
const customInclude = customLayers === null ? "'.mlp.'" : `'/^model\\.layers\\.(${[...Array(customLayers).keys()].join('|')})\\.mlp\\./'`;
writeFileSync(customCfg, `merge_method: custom\nalgorithm: ${join(ROOT, 'algorithms', 'task_arithmetic.js')}\nbase_model: ${world.seed}\ninclude_tensors: [${customInclude}]\nmodels:\n${world.experts.map((m) => `  - model: ${m}`).join('\n')}\n`);
const noCli = values['no-cli'] === true;
const cliBuiltin = noCli ? { seconds: NaN, wallSeconds: NaN, peakRss: NaN } : await runCli(builtinCfg, join(outRoot, 'cli-ta-builtin'));
if (!noCli) log(`selfdev merge task_arithmetic: ${cliBuiltin.seconds.toFixed(1)} s (wall ${cliBuiltin.wallSeconds.toFixed(1)} s), peak RSS ${(cliBuiltin.peakRss / GiB).toFixed(2)} GiB`);
// more alternating rounds of the TA program and the builtin (medians below)
const taRuns = results.ta ? [results.ta.seconds] : [];
const cliRuns = noCli ? [] : [cliBuiltin.seconds];
for (let r = 2; r <= repeat && results.ta && !noCli; r++) {
  taRuns.push((await mergeProgram('ta')).seconds);
  const c = await runCli(builtinCfg, join(outRoot, 'cli-ta-builtin'));
  cliRuns.push(c.seconds);
  cliBuiltin.peakRss = Math.max(cliBuiltin.peakRss, c.peakRss);
  log(`round ${r}: ta ${taRuns.at(-1)!.toFixed(1)} s, selfdev merge task_arithmetic ${c.seconds.toFixed(1)} s (ratio ${(taRuns.at(-1)! / c.seconds).toFixed(2)}); load average ${loadavg()[0]!.toFixed(1)}`);
}
sandbox.close();
const median = (a: number[]): number => {
  const b = [...a].sort((x, y) => x - y);
  return b.length % 2 ? b[b.length >> 1]! : (b[b.length / 2 - 1]! + b[b.length / 2]!) / 2;
};
if (results.ta && taRuns.length > 1) {
  results.ta.seconds = median(taRuns);
  results.ta.mparams_per_s = mergedParams / 1e6 / results.ta.seconds;
}
if (cliRuns.length > 1) cliBuiltin.seconds = median(cliRuns);
let cliCustom: { seconds: number; wallSeconds: number; peakRss: number } | null = null;
let cliCustomError: string | null = null;
if (!noCli && customLayers !== 0) try {
  cliCustom = await runCli(customCfg, join(outRoot, 'cli-ta-custom'));
  log(`selfdev merge custom TA: ${cliCustom.seconds.toFixed(1)} s (wall ${cliCustom.wallSeconds.toFixed(1)} s), peak RSS ${(cliCustom.peakRss / GiB).toFixed(2)} GiB`);
} catch (e) {
  cliCustomError = (e as Error).message.slice(0, 500);
  log(`selfdev merge custom TA failed: ${cliCustomError}`);
}
const allNames = (() => {
  const c = Checkpoint.open(world.seed);
  const n = c.tensorNames();
  c.close();
  return n;
})();
const customNames = customLayers === null ? allNames : allNames.filter((n) => /\.mlp\./.test(n) && (tensorLayer(n) ?? Infinity) < customLayers);
const vsCustom = results.ta && cliCustom ? compare(results.ta.out, join(outRoot, 'cli-ta-custom'), customNames) : null;
const vsBuiltin = results.ta && !noCli ? compare(results.ta.out, join(outRoot, 'cli-ta-builtin'), allNames) : null;

// extrapolation to Mistral-7B (32 layers, hidden 4096, MLP 14336: 96 merged tensors of 58.7M, 5.64B merged of 7.24B params)
const P7 = 7.242e9;
const M7 = 5.637e9;
const N7 = 14336 * 4096;
const ta = results.ta;
const secondsPerParam = ta ? ta.seconds / world.params : NaN; // merge + write, whole model (reads 4×, writes 1× every byte)
const bound7 = PROCESS_OVERHEAD_BYTES + 3 * 4 * N7 + 2 * 2 * N7 + (streamLimits(N7, 3).maxElements ?? 0) * 4 + 3 * 2 * N7 + vocab * 4096 * 2;
const peakAll = Math.max(...Object.values(results).map((r) => r.peak_rss_gib));
const summary = {
  params_per_model: world.params,
  merged_params: mergedParams,
  layers,
  largest_merged_tensor: sw.maxNumel,
  peak_rss_gib: +peakAll.toFixed(3),
  rss_bound_gib: +(bound.bytes / GiB).toFixed(3),
  merge_mparams_per_s: Object.fromEntries(Object.entries(results).map(([k, r]) => [k, +r.mparams_per_s.toFixed(2)])),
  merge_seconds: Object.fromEntries(Object.entries(results).map(([k, r]) => [k, +r.seconds.toFixed(2)])),
  peak_rss_gib_by_program: Object.fromEntries(Object.entries(results).map(([k, r]) => [k, +r.peak_rss_gib.toFixed(3)])),
  cli_merge_mparams_per_s: +(mergedParams / 1e6 / cliBuiltin.seconds).toFixed(2),
  cli_merge_seconds: +cliBuiltin.seconds.toFixed(2),
  cli_peak_rss_gib: +(cliBuiltin.peakRss / GiB).toFixed(3),
  cli_custom_merge_seconds: cliCustom ? +cliCustom.seconds.toFixed(2) : null,
  cli_custom_peak_rss_gib: cliCustom ? +(cliCustom.peakRss / GiB).toFixed(3) : null,
  cli_custom_error: cliCustomError,
  ta_time_vs_cli: ta ? +(ta.seconds / cliBuiltin.seconds).toFixed(2) : null,
  identical_to_cli: vsCustom?.identical ?? null,
  identical_to_cli_tensors: vsCustom ? customNames.length : null,
  repeat,
  ta_seconds_runs: taRuns.map((x) => +x.toFixed(2)),
  cli_seconds_runs: cliRuns.map((x) => +x.toFixed(2)),
  differing_tensors_vs_cli_builtin: vsBuiltin?.differing ?? null,
  seconds_per_candidate_7b: +(secondsPerParam * P7).toFixed(1),
  seconds_per_candidate_7b_note: `TA merge+write time per parameter here × 7.24B (${(M7 / 1e9).toFixed(2)}B merged)`,
  peak_rss_gib_7b: +(((ta?.peak_rss_gib ?? peakAll) * GiB - PROCESS_OVERHEAD_BYTES) * (N7 / sw.maxNumel) / GiB + PROCESS_OVERHEAD_BYTES / GiB).toFixed(2),
  rss_bound_gib_7b: +(bound7 / GiB).toFixed(2),
  memcpy_gb_per_s: +bw.toFixed(2),
  time_scale: timeScale,
  tensors: values.tensors,
  load_average_1m: +loadavg()[0]!.toFixed(1),
  cores: (await import('node:os')).cpus().length,
};
sw.close();
if (values.clean) {
  rmSync(dir, { recursive: true, force: true });
  log(`deleted ${dir}`);
}
console.log(JSON.stringify(summary));
