/**
 * bench:merge — merge throughput and memory on a synthetic Llama-shaped bf16 set (base + 2 models).
 *
 *   npm run bench:merge -- [--params-m 256] [--keep DIR]
 *
 * Measures, in one run on this machine:
 * - memcpy bandwidth (Buffer copy of a large buffer) — the physical reference;
 * - in-memory throughput (decode bf16 → merge in f32 → encode bf16, the formulas mergekit uses) of
 *   task_arithmetic, ties (density 0.5) and dare_linear (density 0.5), in Mparams/s and as a share
 *   of memcpy bandwidth (bytes read + written);
 * - end-to-end `selfdev merge` from files on disk (a child process each), GB/s, and its peak RSS
 *   against the bound (models + 2) × largest tensor + 200 MB.
 * The final line is one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeLlamaCheckpoint } from '../src/io/testing.ts';
import { Checkpoint } from '../src/io/checkpoint.ts';
import { decodeToF32, encodeFromF32 } from '../src/tensor/dtype.ts';
import { getMethod } from '../src/merge/registry.ts';
import { tensorSeed } from '../src/merge/params.ts';
import { nativeAvailable } from '../src/tensor/native.ts';
import type { ParamValue } from '../src/merge/types.ts';

const { values } = parseArgs({ options: { 'params-m': { type: 'string', default: '256' }, keep: { type: 'string' }, 'skip-e2e': { type: 'boolean' } } });
const targetParams = Number(values['params-m']) * 1e6;
const hidden = 1024;
const intermediate = 2752;
const vocab = 32000;
const perLayer = 4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden;
const layers = Math.max(1, Math.ceil((targetParams - 2 * vocab * hidden) / perLayer));
const root = values.keep ?? mkdtempSync(join(tmpdir(), 'selfdev-bench-merge-'));
mkdirSync(root, { recursive: true });
const bin = fileURLToPath(new URL('../bin/selfdev.mjs', import.meta.url));
const log = (s: string) => process.stderr.write(s + '\n');

function ensureModels(): void {
  const dims = { layers, hidden, intermediate, vocab, heads: 16, kvHeads: 16, dtype: 'BF16' as const };
  if (!existsSync(join(root, 'base', 'config.json'))) {
    log(`generating base model: ${layers} layers, hidden ${hidden}, in ${root}`);
    makeLlamaCheckpoint(join(root, 'base'), { ...dims, seed: 1 });
  }
  for (const [name, seed] of [['m1', 2], ['m2', 3]] as const) {
    if (!existsSync(join(root, name, 'config.json'))) {
      log(`generating ${name}`);
      makeLlamaCheckpoint(join(root, name), { ...dims, seed, perturb: { from: join(root, 'base'), scale: 0.05 } });
    }
  }
}

function memcpyGBps(): number {
  const n = 256 * 1024 * 1024;
  const a = Buffer.alloc(n, 1);
  const b = Buffer.alloc(n);
  a.copy(b);
  let best = 0;
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    a.copy(b);
    best = Math.max(best, (2 * n) / ((performance.now() - t) / 1000) / 1e9);
  }
  return best;
}

const METHODS: Array<{ name: string; global: Record<string, ParamValue>; model: Record<string, ParamValue> }> = [
  { name: 'task_arithmetic', global: { lambda: 1, normalize: false }, model: { weight: 0.5 } },
  { name: 'ties', global: { lambda: 1, normalize: true }, model: { weight: 0.5, density: 0.5 } },
  { name: 'dare_linear', global: { lambda: 1, normalize: false, rescale: true }, model: { weight: 0.5, density: 0.5 } },
];

/** In-memory: every tensor is already loaded as raw bf16 bytes, like torch_merge.py. */
function inMemory(): Record<string, number> {
  const base = Checkpoint.open(join(root, 'base'));
  const models = ['m1', 'm2'].map((m) => Checkpoint.open(join(root, m)));
  const names = base.tensorNames();
  // load a bounded sample of tensors (≥ 64M params) into memory, then time merging them
  const sample: Array<{ name: string; shape: number[]; b: Uint8Array; xs: Uint8Array[] }> = [];
  let params = 0;
  for (const name of names) {
    if (params >= Math.min(targetParams, 64e6)) break;
    const info = base.info(name);
    sample.push({ name, shape: info.shape, b: base.readBytes(name), xs: models.map((m) => m.readBytes(name)) });
    params += info.byteLength / 2;
  }
  base.close();
  models.forEach((m) => m.close());
  const out: Record<string, number> = { inmem_params: params };
  for (const spec of METHODS) {
    const method = getMethod(spec.name);
    // working buffers allocated once and reused, as the engine does; like the engine, methods with
    // a raw-bytes fast path merge straight from the stored bf16 bytes into the encoded output
    const maxN = Math.max(...sample.map((t) => t.b.byteLength / 2));
    const slots = [0, 1, 2, 3].map(() => new Float32Array(maxN));
    const encoded = new Uint8Array(maxN * 2);
    const run = () => {
      for (const t of sample) {
        const n = t.b.byteLength / 2;
        const common = {
          name: t.name, shape: t.shape, modelParams: t.xs.map(() => ({ ...spec.model })), params: { ...spec.global },
          layer: null, numLayers: layers, seed: tensorSeed(0, t.name),
        };
        const out = encoded.subarray(0, n * 2);
        if (method.mergeRaw?.({ ...common, base: { bytes: t.b, dtype: 'BF16' }, models: t.xs.map((x) => ({ bytes: x, dtype: 'BF16' as const })), out: { bytes: out, dtype: 'BF16' } })) continue;
        const merged = method.merge({
          ...common, base: decodeToF32(t.b, 'BF16', slots[0]!.subarray(0, n)),
          models: t.xs.map((x, i) => decodeToF32(x, 'BF16', slots[i + 1]!.subarray(0, n))),
          out: slots[3]!.subarray(0, n),
        });
        encodeFromF32(merged, 'BF16', out);
      }
    };
    run(); // warm-up
    const t0 = performance.now();
    run();
    const s = (performance.now() - t0) / 1000;
    out[`${spec.name}_Mparams_per_s`] = params / s / 1e6;
    out[`${spec.name}_GBps`] = (params * 2 * 4) / s / 1e9; // 3 inputs read + 1 output written, bf16
  }
  return out;
}

function endToEnd(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of METHODS) {
    const cfg = join(root, `${spec.name}.yml`);
    const model = (m: string) => `  - model: ${join(root, m)}\n    parameters: {${Object.entries(spec.model).map(([k, v]) => `${k}: ${v}`).join(', ')}}`;
    writeFileSync(cfg, `merge_method: ${spec.name}\nbase_model: ${join(root, 'base')}\nmodels:\n${model('m1')}\n${model('m2')}\n`);
    const outDir = join(root, `out-${spec.name}`);
    const r = spawnSync(process.execPath, [bin, 'merge', cfg, outDir, '--json', '--overwrite'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`selfdev merge failed: ${r.stderr}`);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number; bytesRead: number; bytesWritten: number; maxRssBytes?: number; parameters: number };
    out[`e2e_${spec.name}_GBps`] = (summary.bytesRead + summary.bytesWritten) / summary.seconds / 1e9;
    out[`e2e_${spec.name}_Mparams_per_s`] = summary.parameters / summary.seconds / 1e6;
    if (summary.maxRssBytes) out[`e2e_${spec.name}_peak_rss_MB`] = summary.maxRssBytes / 1e6;
    rmSync(outDir, { recursive: true, force: true });
  }
  return out;
}

ensureModels();
const largestTensor = vocab * hidden * 4; // f32 working copy of the embedding
const result: Record<string, unknown> = {
  bench: 'merge',
  native: nativeAvailable(),
  params_per_model: layers * perLayer + 2 * vocab * hidden,
  layers,
  memcpy_GBps: memcpyGBps(),
};
Object.assign(result, inMemory());
const mem = result.memcpy_GBps as number;
result.task_arithmetic_share_of_memcpy = (result.task_arithmetic_GBps as number) / mem;
// PyTorch anchors (shared/anchors/torch_merge.py, 2 threads, measured on this machine kind earlier)
const torch = { task_arithmetic: 84, ties: 6.0, dare_linear: 23 };
result.ties_vs_torch = (result.ties_Mparams_per_s as number) / torch.ties;
result.dare_linear_vs_torch = (result.dare_linear_Mparams_per_s as number) / torch.dare_linear;
if (!values['skip-e2e']) Object.assign(result, endToEnd());
result.rss_bound_MB = (4 * largestTensor + 200e6) / 1e6;
result.targets = {
  task_arithmetic_ge_50pct_memcpy: (result.task_arithmetic_share_of_memcpy as number) >= 0.5,
  ties_ge_10x_torch: (result.ties_vs_torch as number) >= 10,
  dare_linear_ge_10x_torch: (result.dare_linear_vs_torch as number) >= 10,
  peak_rss_within_bound: METHODS.every((m) => ((result[`e2e_${m.name}_peak_rss_MB`] as number) ?? Infinity) <= (result.rss_bound_MB as number)),
};
if (!values.keep) rmSync(root, { recursive: true, force: true });
console.log(JSON.stringify(result));
