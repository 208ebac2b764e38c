/**
 * bench:kernels — native vs JS kernel throughput, and in-memory merge throughput of the fused
 * `gtaMerge` on a synthetic Llama-shaped bf16 set, both against memcpy measured in the same run.
 *
 *   npm run bench:kernels -- [--params 256] [--models 2] [--threads 2] [--quick]
 *
 * --params: millions of parameters per model (rounded up to whole layers of 4×1024² + 3×2752×1024);
 * --quick: 32M params and shorter kernel runs. The final line is one JSON object:
 * kernels.<name> = { native_Gelem_s, js_Gelem_s, speedup }, memcpy_GBps (Buffer.copy: bytes read +
 * written per second) and typedarray_set_GBps, then per merge method Mparams_s, GBps (bf16 bytes
 * of base + models read and output written, per second), memcpy_ratio = GBps / memcpy_GBps, and
 * vs_torch = Mparams_s / the PyTorch figure (torch_merge.py 256 2 2 on this machine, passed with
 * --torch-ta/--torch-ties/--torch-dare or the defaults measured earlier: 84, 6.0, 23 Mparams/s),
 * cpu_utilization = process CPU seconds / wall seconds during the run (below `threads` when the
 * machine is shared: then Mparams_per_cpu_s is the load-independent figure), js_Mparams_s = the
 * JS reference on one layer. call_us_131072_elems: one scale() call on 2 blocks on 1 thread, on
 * the persistent pool, and with threads spawned per call.
 */
import { parseArgs } from 'node:util';
import {
  axpy, sub, scale, deltaAxpy, l1, l2sq, dot, absMax, topkMagnitudeInPlace, bernoulliMaskInPlace,
  gtaMerge, reference, setThreads, nativeStatus, configureNative, setNativeMinLength,
} from '../src/tensor/kernels.ts';
import type { GtaOptions } from '../src/tensor/kernels.ts';
import { decodeToF32, decodeToF32Reference, encodeFromF32, encodeFromF32Reference } from '../src/tensor/dtype.ts';

const { values } = parseArgs({
  options: {
    params: { type: 'string', default: '256' },
    models: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    quick: { type: 'boolean', default: false },
    'torch-ta': { type: 'string', default: '84' },
    'torch-ties': { type: 'string', default: '6.0' },
    'torch-dare': { type: 'string', default: '23' },
  },
});
const quick = values.quick;
const paramsM = quick ? 32 : Number(values.params);
const nModels = Number(values.models);
const nThreads = Number(values.threads);
if (!(paramsM > 0) || !(nModels >= 1) || !Number.isInteger(nThreads) || nThreads < 1) throw new Error('bad --params / --models / --threads');
setThreads(nThreads);
const status = nativeStatus();
const log = (s: string) => process.stderr.write(s + '\n');
log(`native: ${JSON.stringify(status)}`);

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

/** best-of-`reps` seconds of f */
function time(f: () => void, reps: number): number {
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    f();
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  return best;
}

// ---------------------------------------------------------------- memcpy reference
const big = 256 * 1024 * 1024;
const srcBuf = Buffer.alloc(big, 1);
const dstBuf = Buffer.alloc(big);
srcBuf.copy(dstBuf);
const memcpyGBps = (2 * big) / time(() => srcBuf.copy(dstBuf), 3) / 1e9;
const srcF = new Float32Array(srcBuf.buffer, srcBuf.byteOffset, big / 4);
const dstF = new Float32Array(dstBuf.buffer, dstBuf.byteOffset, big / 4);
const setGBps = (2 * big) / time(() => dstF.set(srcF), 3) / 1e9;
log(`memcpy ${memcpyGBps.toFixed(2)} GB/s (Buffer.copy), ${setGBps.toFixed(2)} GB/s (TypedArray.set)`);

// ---------------------------------------------------------------- kernels
const N = quick ? 1 << 22 : 1 << 24;
const NJS = 1 << 21;
const r = rng(1);
const a = new Float32Array(N).map(() => r());
const b = new Float32Array(N).map(() => r());
const y = new Float32Array(N);
const bytes16 = encodeFromF32Reference(a.subarray(0, N), 'BF16');
const out16 = new Uint8Array(N * 2);
const reps = quick ? 2 : 3;

type K = { name: string; native: (n: number) => void; js: (n: number) => void };
const kernels: K[] = [
  { name: 'axpy', native: (n) => axpy(y.subarray(0, n), 0.5, a.subarray(0, n)), js: (n) => reference.axpy(y.subarray(0, n), 0.5, a.subarray(0, n)) },
  { name: 'sub', native: (n) => sub(y.subarray(0, n), a.subarray(0, n), b.subarray(0, n)), js: (n) => reference.sub(y.subarray(0, n), a.subarray(0, n), b.subarray(0, n)) },
  { name: 'scale', native: (n) => scale(y.subarray(0, n), 0.999), js: (n) => reference.scale(y.subarray(0, n), 0.999) },
  { name: 'deltaAxpy', native: (n) => deltaAxpy(y.subarray(0, n), 0.5, a.subarray(0, n), b.subarray(0, n)), js: (n) => reference.deltaAxpy(y.subarray(0, n), 0.5, a.subarray(0, n), b.subarray(0, n)) },
  { name: 'l1', native: (n) => void l1(a.subarray(0, n)), js: (n) => void reference.l1(a.subarray(0, n)) },
  { name: 'l2sq', native: (n) => void l2sq(a.subarray(0, n)), js: (n) => void reference.l2sq(a.subarray(0, n)) },
  { name: 'dot', native: (n) => void dot(a.subarray(0, n), b.subarray(0, n)), js: (n) => void reference.dot(a.subarray(0, n), b.subarray(0, n)) },
  { name: 'absMax', native: (n) => void absMax(a.subarray(0, n)), js: (n) => void reference.absMax(a.subarray(0, n)) },
  { name: 'decode_bf16', native: (n) => void decodeToF32(bytes16.subarray(0, 2 * n), 'BF16', y.subarray(0, n)), js: (n) => void decodeToF32Reference(bytes16.subarray(0, 2 * n), 'BF16', y.subarray(0, n)) },
  { name: 'encode_bf16', native: (n) => void encodeFromF32(a.subarray(0, n), 'BF16', out16.subarray(0, 2 * n)), js: (n) => void encodeFromF32Reference(a.subarray(0, n), 'BF16', out16.subarray(0, 2 * n)) },
  { name: 'decode_f16', native: (n) => void decodeToF32(bytes16.subarray(0, 2 * n), 'F16', y.subarray(0, n)), js: (n) => void decodeToF32Reference(bytes16.subarray(0, 2 * n), 'F16', y.subarray(0, n)) },
  { name: 'encode_f16', native: (n) => void encodeFromF32(a.subarray(0, n), 'F16', out16.subarray(0, 2 * n)), js: (n) => void encodeFromF32Reference(a.subarray(0, n), 'F16', out16.subarray(0, 2 * n)) },
  { name: 'bernoulli', native: (n) => { y.set(a.subarray(0, n)); bernoulliMaskInPlace(y.subarray(0, n), 0.5, 7); }, js: (n) => { y.set(a.subarray(0, n)); reference.bernoulliMaskInPlace(y.subarray(0, n), 0.5, 7); } },
  { name: 'topk_half', native: (n) => { y.set(a.subarray(0, n)); topkMagnitudeInPlace(y.subarray(0, n), n >> 1); }, js: (n) => { y.set(a.subarray(0, n)); reference.topkMagnitudeInPlace(y.subarray(0, n), n >> 1); } },
];
const kernelOut: Record<string, { native_Gelem_s: number; js_Gelem_s: number; speedup: number }> = {};
for (const k of kernels) {
  k.native(N);
  const tn = time(() => k.native(N), reps);
  k.js(NJS);
  const tj = time(() => k.js(NJS), 2);
  const nat = N / tn / 1e9;
  const js = NJS / tj / 1e9;
  kernelOut[k.name] = { native_Gelem_s: round(nat), js_Gelem_s: round(js), speedup: round(nat / js) };
  log(`${k.name.padEnd(12)} native ${nat.toFixed(3)} Gelem/s   js ${js.toFixed(3)} Gelem/s   x${(nat / js).toFixed(1)}`);
}

// thread pool vs threads spawned per call: a call on 2 blocks (131072 elements, in cache),
// parallel from 0 elements, on 1 thread / the pool / fresh threads per call
const tiny = new Float32Array(131072);
configureNative({ parallelMin: 0 });
setNativeMinLength(0);
const callsN = 2000;
const perCall = (th: number) => {
  setThreads(th);
  // median of 7 batches: the machine is shared, wake-up latencies are noisy
  const ts: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t = performance.now();
    for (let i = 0; i < callsN; i++) scale(tiny, 1);
    ts.push(((performance.now() - t) / callsN) * 1000);
  }
  return ts.sort((x, y) => x - y)[3]!;
};
const call1 = perCall(1);
const call2 = perCall(nThreads);
configureNative({ spawnPerCall: true });
const callSpawn = perCall(nThreads);
configureNative({ spawnPerCall: false });
configureNative({ parallelMin: 1 << 18 });
setNativeMinLength(1024);
setThreads(nThreads);
log(`native scale() call on 131072 elems: ${call1.toFixed(2)} us on 1 thread, ${call2.toFixed(2)} us with the ${nThreads}-thread pool, ${callSpawn.toFixed(2)} us spawning threads per call`);

// ---------------------------------------------------------------- synthetic Llama-shaped merge
const d = 1024;
const f = 2752;
const layerShapes = [d * d, d * d, d * d, d * d, f * d, f * d, d * f];
const perLayer = layerShapes.reduce((s, v) => s + v, 0);
const nLayers = Math.max(1, Math.ceil((paramsM * 1e6) / perLayer));
const sizes: number[] = [];
for (let l = 0; l < nLayers; l++) sizes.push(...layerShapes);
const params = sizes.reduce((s, v) => s + v, 0);
log(`synthesizing ${nLayers} layers, ${(params / 1e6).toFixed(1)}M params per model, base + ${nModels} models in bf16...`);
const gen = rng(42);
const scratch = new Float32Array(f * d);
const baseT: Uint8Array[] = [];
const modelT: Uint8Array[][] = Array.from({ length: nModels }, () => []);
for (const n of sizes) {
  const bf = scratch.subarray(0, n);
  for (let i = 0; i < n; i++) bf[i] = gen() * 0.04;
  const bb = encodeFromF32(bf, 'BF16');
  baseT.push(bb);
  const bdec = decodeToF32(bb, 'BF16');
  for (let m = 0; m < nModels; m++) {
    for (let i = 0; i < n; i++) bf[i] = bdec[i]! + gen() * 2e-3;
    modelT[m]!.push(encodeFromF32(bf, 'BF16'));
  }
}
const outT = sizes.map((n) => new Uint8Array(n * 2));
const w = 1 / nModels;
const seeds = Array.from({ length: nModels }, (_, i) => 1000 + i);
const methods: Array<{ name: string; torch: number; cfg: GtaOptions }> = [
  { name: 'task_arithmetic', torch: Number(values['torch-ta']), cfg: { weights: seeds.map(() => w) } },
  { name: 'ties', torch: Number(values['torch-ties']), cfg: { weights: seeds.map(() => w), sparsify: 'magnitude', density: 0.5, consensus: 'sum', normalize: true } },
  { name: 'dare_linear', torch: Number(values['torch-dare']), cfg: { weights: seeds.map(() => w), sparsify: 'random', density: 0.5, rescale: true, seeds } },
];
const bytesPerParam = 2 * (nModels + 2); // bf16: base + models read, output written
const mergeOut: Record<string, number> = {};
for (const m of methods) {
  const run = (count: number, ref: boolean) => {
    for (let t = 0; t < count; t++) {
      const ins = modelT.map((mt) => ({ bytes: mt[t]!, dtype: 'BF16' as const }));
      const args = [{ bytes: outT[t]!, dtype: 'BF16' as const }, { bytes: baseT[t]!, dtype: 'BF16' as const }, ins, m.cfg] as const;
      if (ref) reference.gtaMerge(...args);
      else gtaMerge(...args);
    }
  };
  if (m === methods[0]) run(sizes.length, false); // warm-up: touches every output page once
  else run(Math.min(7, sizes.length), false);
  const cpu0 = process.cpuUsage();
  const s = time(() => run(sizes.length, false), 1);
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const mps = params / s / 1e6;
  const gbps = (params * bytesPerParam) / s / 1e9;
  // JS reference on the first layer only
  const refParams = layerShapes.reduce((acc, v) => acc + v, 0);
  const sj = time(() => run(layerShapes.length, true), 1);
  const jsMps = refParams / sj / 1e6;
  mergeOut[`${m.name}_Mparams_s`] = round(mps);
  mergeOut[`${m.name}_GBps`] = round(gbps);
  mergeOut[`${m.name}_memcpy_ratio`] = round(gbps / memcpyGBps);
  mergeOut[`${m.name}_vs_torch`] = round(mps / m.torch);
  mergeOut[`${m.name}_js_Mparams_s`] = round(jsMps);
  mergeOut[`${m.name}_cpu_utilization`] = round(cpuS / s); // < threads when the machine is contended
  mergeOut[`${m.name}_Mparams_per_cpu_s`] = round(params / cpuS / 1e6);
  log(`${m.name.padEnd(16)} ${mps.toFixed(1)} Mparams/s  ${gbps.toFixed(2)} GB/s  = ${(gbps / memcpyGBps * 100).toFixed(0)}% of memcpy  x${(mps / m.torch).toFixed(1)} vs torch ${m.torch}  (JS ${jsMps.toFixed(1)} Mparams/s; ${(cpuS / s).toFixed(2)} CPUs busy)`);
}

// unfused f32 path a method written against Float32Array would take (decode, deltaAxpy, encode)
{
  const n = f * d;
  const t = time(() => {
    for (let k = 0; k < 7; k++) {
      const bf = decodeToF32(baseT[4]!, 'BF16');
      const acc = new Float32Array(n);
      for (let m = 0; m < nModels; m++) deltaAxpy(acc, w, decodeToF32(modelT[m]![4]!, 'BF16'), bf);
      axpy(bf, 1, acc);
      encodeFromF32(bf, 'BF16', outT[4]);
    }
  }, 2);
  mergeOut.task_arithmetic_f32_path_Mparams_s = round((7 * n) / t / 1e6);
  log(`task_arithmetic via decode+deltaAxpy+encode (unfused f32 path): ${((7 * n) / t / 1e6).toFixed(1)} Mparams/s`);
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

console.log(JSON.stringify({
  bench: 'kernels',
  native: status.loaded,
  avx2: status.avx2,
  threads: nThreads,
  params_per_model: params,
  n_models: nModels,
  memcpy_GBps: round(memcpyGBps),
  typedarray_set_GBps: round(setGBps),
  call_us_131072_elems: { one_thread: round(call1), pool: round(call2), spawn_per_call: round(callSpawn) },
  ...mergeOut,
  torch_Mparams_s: { task_arithmetic: methods[0]!.torch, ties: methods[1]!.torch, dare_linear: methods[2]!.torch },
  kernels: kernelOut,
}));
