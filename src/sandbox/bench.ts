/**
 * Sandbox overhead benchmark: `npx tsx src/sandbox/bench.ts`. Prints one JSON line.
 * - candidateMs: one trivial candidate end to end through the Sandbox (IPC + fresh isolate +
 *   prelude + load + call + result back), and the child-side part of it (childMs)
 * - smokeMs: the whole smoke stage of the cascade for task_arithmetic.js (7 sandbox runs)
 * - opUs: per torch op call inside the sandbox (on a [4, 8] tensor), and the same op called
 *   directly on the host (baseline, same process) → ratio
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { add, NDArray } from '../tensor/nd.ts';
import { Sandbox } from './sandbox.ts';
import { validateAlgorithm } from './validate.ts';
import type { MergeContext } from './types.ts';

const ctx: MergeContext = { name: 'model.layers.0.mlp.up_proj.weight', layer: 0, numLayers: 2, kind: 'mlp', shape: [4, 8], numModels: 2, seed: 7 };
const inputs = (): Float32Array[] => [new Float32Array(32).fill(1), new Float32Array(32).fill(2)];
const trivial = 'function merge(tv){ return tv[0] }';
const N = 30;
const K = 5000;

const sb = new Sandbox();
await sb.start();
for (let i = 0; i < 5; i++) await sb.run(trivial, inputs(), ctx);
let t = performance.now();
let child = 0;
for (let i = 0; i < N; i++) child += (await sb.run(trivial, inputs(), ctx)).ms!;
const candidateMs = (performance.now() - t) / N;
const childMs = child / N;

const src = readFileSync(new URL('../../algorithms/task_arithmetic.js', import.meta.url), 'utf8');
t = performance.now();
const v = await validateAlgorithm(src, { sandbox: sb });
const smokeMs = v.timings.smokeMs;
const parseMs = performance.now() - t - smokeMs;

const base = await sb.run(trivial, inputs(), ctx);
const loop = await sb.run(`function merge(tv){ let x = tv[0]; for (let i = 0; i < ${K}; i++) x = x.add(0); return x }`, inputs(), ctx, { maxOps: K + 10 });
const opUs = ((loop.ms! - base.ms!) / K) * 1000;
sb.close();

let x = new NDArray(new Float32Array(32).fill(1), [4, 8]);
t = performance.now();
for (let i = 0; i < K; i++) x = add(x, 0);
const directUs = ((performance.now() - t) / K) * 1000;

console.log(JSON.stringify({ candidateMs: +candidateMs.toFixed(2), childMs: +childMs.toFixed(2), parseMs: +parseMs.toFixed(2), smokeMs: +smokeMs.toFixed(1), smokeRuns: v.timings.runs - 1, opUs: +opUs.toFixed(2), directOpUs: +directUs.toFixed(2), opOverheadRatio: +(opUs / directUs).toFixed(1), load1: +loadavg()[0]!.toFixed(1) }));
