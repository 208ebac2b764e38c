/**
 * The validation cascade for merge algorithms: parse → smoke run on small random tensors (shape,
 * finiteness, all-zero task vectors → ~0, determinism for one seed) → optional real run on
 * caller-given tensors. Also: `makeMergeFunction` (what the merge engine calls per tensor) and
 * `transpileIfTypeScript`.
 */
import { createRequire } from 'node:module';
import { cosineSimilarity, NDArray } from '../tensor/nd.ts';
import { uniformAt } from '../tensor/kernels.ts';
import type { Sandbox } from './sandbox.ts';
import { tensorKind, tensorLayer, type FailureCategory, type MergeContext, type ModelStats, type RunOutcome, type SandboxLimits, type TensorKind, type TensorRef } from './types.ts';

export interface Verdict {
  ok: boolean;
  /** the stage that rejected the program (or 'real' / 'smoke' for the last stage passed) */
  stage: 'parse' | 'smoke' | 'real';
  category?: FailureCategory;
  message?: string;
  /** whether the program defines prepare(stats) */
  hasPrepare: boolean;
  timings: { parseMs: number; smokeMs: number; realMs: number; runs: number };
}

export interface TensorCase {
  name: string;
  shape: number[];
  layer?: number | null;
  kind?: TensorKind;
  taskVectors: Float32Array[];
}

export interface ValidateOptions {
  sandbox: Pick<Sandbox, 'check' | 'run' | 'prepare'>;
  /** 'ts' transpiles first (needs the typescript package); default: 'js' */
  language?: 'js' | 'ts';
  seed?: number;
  limits?: Partial<SandboxLimits>;
  /** the real stage: tensors to merge (e.g. a small model's task vectors) */
  real?: { tensors: TensorCase[]; numLayers: number };
  /** absolute tolerance for "all-zero task vectors give ~0" */
  zeroTolerance?: number;
}

export class AlgorithmRejected extends Error {
  readonly category: FailureCategory;
  constructor(category: FailureCategory, message: string) {
    super(`${category}: ${message}`);
    this.category = category;
  }
}

/** Transpiles TypeScript to a plain script with the `typescript` package if it can be resolved. */
export function transpileIfTypeScript(source: string, language: 'js' | 'ts'): { ok: true; source: string } | { ok: false; message: string } {
  if (language === 'js') return { ok: true, source };
  let ts: typeof import('typescript');
  try {
    ts = createRequire(import.meta.url)('typescript') as typeof import('typescript');
  } catch {
    return { ok: false, message: 'TypeScript sources need the `typescript` package, which is not installed here; write the algorithm in JavaScript' };
  }
  const out = ts.transpileModule(source, {
    reportDiagnostics: true,
    fileName: 'algorithm.ts',
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, removeComments: false },
  });
  const d = out.diagnostics?.find((x) => x.category === ts.DiagnosticCategory.Error);
  if (d) {
    const pos = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : null;
    return { ok: false, message: `${ts.flattenDiagnosticMessageText(d.messageText, '\n')}${pos ? ` at line ${pos.line + 1}:${pos.character + 1}` : ''}` };
  }
  return { ok: true, source: out.outputText.replace(/^export \{\};\s*$/m, '') };
}

/** Whole-model statistics for prepare(stats): per tensor, task-vector norms and pairwise cosines. */
export function computeStats(tensors: readonly TensorCase[]): ModelStats {
  const stats: ModelStats = {};
  for (const t of tensors) {
    const arrs = t.taskVectors.map((x) => new NDArray(x, t.shape));
    const norms = arrs.map((a) => Math.sqrt(a.data.reduce((s, v) => s + v * v, 0)));
    const cosine = arrs.map((a) => arrs.map((b) => cosineSimilarity(a, b).data[0]!));
    stats[t.name] = { shape: [...t.shape], layer: t.layer ?? tensorLayer(t.name), kind: t.kind ?? tensorKind(t.name), norms, cosine };
  }
  return stats;
}

function seededTensor(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (uniformAt(seed, i) * 2 - 1) * scale;
  return out;
}

function tensorSeed(runSeed: number, name: string): number {
  let h = (0x811c9dc5 ^ runSeed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** The smoke tensors: several shapes (1-D, 2-D), kinds and model counts. */
export function smokeCases(seed: number): { cases: TensorCase[]; numLayers: number } {
  const specs: Array<[string, number[], number]> = [
    ['model.layers.0.mlp.up_proj.weight', [6, 10], 3],
    ['model.layers.1.self_attn.q_proj.weight', [8, 8], 2],
    ['model.layers.1.post_attention_layernorm.weight', [16], 3],
    ['model.embed_tokens.weight', [12, 8], 2],
  ];
  const cases = specs.map(([name, shape, k], ci) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { name, shape, layer: tensorLayer(name), kind: tensorKind(name), taskVectors: Array.from({ length: k }, (_, i) => seededTensor(n, (seed + 1000 * ci + i) >>> 0, 0.01 * (i + 1))) };
  });
  return { cases, numLayers: 2 };
}

function ctxFor(t: TensorCase, numLayers: number, seed: number, state: unknown): MergeContext {
  return {
    name: t.name,
    layer: t.layer === undefined ? tensorLayer(t.name) : t.layer,
    numLayers,
    kind: t.kind ?? tensorKind(t.name),
    shape: [...t.shape],
    numModels: t.taskVectors.length,
    seed: tensorSeed(seed, t.name),
    ...(state === undefined ? {} : { state }),
  };
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Runs prepare if the program has one; returns its parsed state (undefined when absent). */
async function runPrepare(sb: ValidateOptions['sandbox'], source: string, cases: TensorCase[], seed: number, limits?: Partial<SandboxLimits>): Promise<{ has: boolean; state?: unknown; fail?: RunOutcome }> {
  const numModels = Math.max(...cases.map((c) => c.taskVectors.length));
  const r = await sb.prepare(source, computeStats(cases), numModels, seed, limits);
  if (!r.ok) return r.category === 'no-entry-point' ? { has: false } : { has: true, fail: { ...r, message: `prepare: ${r.message}` } };
  return { has: true, state: JSON.parse(r.stateJson ?? 'null') as unknown };
}

export async function validateAlgorithm(source: string, opts: ValidateOptions): Promise<Verdict> {
  const sb = opts.sandbox;
  const seed = (opts.seed ?? 1234) >>> 0;
  const tol = opts.zeroTolerance ?? 1e-6;
  const timings = { parseMs: 0, smokeMs: 0, realMs: 0, runs: 0 };
  const v = (stage: Verdict['stage'], r: { category?: FailureCategory; message?: string } | null, hasPrepare = false): Verdict =>
    r ? { ok: false, stage, category: r.category ?? 'runtime', message: r.message, hasPrepare, timings } : { ok: true, stage, hasPrepare, timings };

  // 1. parse
  let t0 = performance.now();
  const tr = transpileIfTypeScript(source, opts.language ?? 'js');
  if (!tr.ok) return v('parse', { category: 'syntax', message: tr.message });
  const src = tr.source;
  const chk = await sb.check(src, opts.limits);
  timings.runs++;
  timings.parseMs = performance.now() - t0;
  if (!chk.ok) return v('parse', chk);

  // 2. smoke
  t0 = performance.now();
  const { cases, numLayers } = smokeCases(seed);
  const prep = await runPrepare(sb, src, cases, seed, opts.limits);
  timings.runs++;
  if (prep.fail) return v('smoke', prep.fail, true);
  let first: Float32Array | undefined;
  for (const c of cases) {
    const r = await sb.run(src, c.taskVectors, ctxFor(c, numLayers, seed, prep.state), opts.limits);
    timings.runs++;
    if (!r.ok) {
      timings.smokeMs = performance.now() - t0;
      return v('smoke', { category: r.category, message: `${r.message} [smoke: ${c.name} ${JSON.stringify(c.shape)}, ${c.taskVectors.length} models]` }, prep.has);
    }
    first ??= r.result!;
  }
  const c0 = cases[0]!;
  const again = await sb.run(src, c0.taskVectors, ctxFor(c0, numLayers, seed, prep.state), opts.limits);
  timings.runs++;
  if (!again.ok) return v('smoke', { category: 'nondeterministic', message: `a second run with the same seed failed (${again.category}: ${again.message})` }, prep.has);
  if (!bitsEqual(first!, again.result!)) return v('smoke', { category: 'nondeterministic', message: 'two runs with the same inputs and seed gave different results; use ctx.rng / torch.rand only' }, prep.has);
  const zeros = c0.taskVectors.map((x) => new Float32Array(x.length));
  const z = await sb.run(src, zeros, ctxFor(c0, numLayers, seed, prep.state), opts.limits);
  timings.runs++;
  timings.smokeMs = performance.now() - t0;
  if (!z.ok) return v('smoke', { category: z.category, message: `with all-zero task vectors: ${z.message}` }, prep.has);
  let worst = 0;
  for (const x of z.result!) worst = Math.max(worst, Math.abs(x));
  if (!(worst <= tol))
    return v('smoke', { category: 'bad-return', message: `with all-zero task vectors merge must return ~0 (the result is added to the seed model), but max |value| = ${worst}` }, prep.has);

  // 3. real
  if (!opts.real) return v('smoke', null, prep.has);
  t0 = performance.now();
  const real = opts.real;
  let state = prep.state;
  if (prep.has) {
    const p2 = await runPrepare(sb, src, real.tensors, seed, opts.limits);
    timings.runs++;
    if (p2.fail) return v('real', p2.fail, true);
    state = p2.state;
  }
  for (const t of real.tensors) {
    const r = await sb.run(src, t.taskVectors, ctxFor(t, real.numLayers, seed, state), opts.limits);
    timings.runs++;
    if (!r.ok) {
      timings.realMs = performance.now() - t0;
      return v('real', { category: r.category, message: `${r.message} [tensor ${t.name}]` }, prep.has);
    }
  }
  timings.realMs = performance.now() - t0;
  return v('real', null, prep.has);
}

export type MergeFunction = (taskVectors: Float32Array[], ctx: Omit<MergeContext, 'state' | 'numModels' | 'kind'> & { kind?: TensorKind }) => Promise<Float32Array>;

/**
 * What the merge engine calls per tensor. If the program defines prepare(stats), pass `stats`
 * (e.g. from computeStats over the whole model); its result becomes ctx.state of every call.
 * Failures throw AlgorithmRejected (with the category).
 */
export function makeMergeFunction(source: string, sandbox: Pick<Sandbox, 'run' | 'prepare'>, opts: { stats?: ModelStats; seed?: number; limits?: Partial<SandboxLimits> } = {}): MergeFunction {
  const getState = stateOnce(source, sandbox, opts);
  return async (taskVectors, ctx) => {
    const st = await getState(taskVectors.length);
    const full: MergeContext = { ...ctx, kind: ctx.kind ?? tensorKind(ctx.name), numModels: taskVectors.length, shape: [...ctx.shape], ...(st === undefined ? {} : { state: st }) };
    const r = await sandbox.run(source, taskVectors, full, opts.limits);
    if (!r.ok) throw new AlgorithmRejected(r.category ?? 'runtime', `${r.message} [tensor ${ctx.name}]`);
    return r.result!;
  };
}

/** The program's prepare(stats) state, computed once on first use (undefined without stats or prepare). */
function stateOnce(source: string, sandbox: Pick<Sandbox, 'prepare'>, opts: { stats?: ModelStats; seed?: number; limits?: Partial<SandboxLimits> }): (numModels: number) => Promise<unknown> {
  let state: Promise<unknown> | null = null;
  return (numModels) => {
    if (!opts.stats) return Promise.resolve(undefined);
    state ??= sandbox.prepare(source, opts.stats, numModels, (opts.seed ?? 0) >>> 0, opts.limits).then((r) => {
      if (r.ok) return JSON.parse(r.stateJson ?? 'null') as unknown;
      if (r.category === 'no-entry-point') return undefined;
      throw new AlgorithmRejected(r.category ?? 'runtime', `prepare: ${r.message}`);
    });
    return state;
  };
}

/** Per tensor of a streamed merge: the tensor's place in the base and expert files, and the output dtype. */
export type FileMergeFunction = (
  base: TensorRef,
  experts: TensorRef[],
  outDtype: TensorRef['dtype'],
  ctx: Omit<MergeContext, 'state' | 'numModels' | 'kind'> & { kind?: TensorKind },
  /** a buffer to receive the merged bytes (the result is then a view of it, valid until the caller reuses it) */
  into?: Uint8Array,
) => Promise<Uint8Array>;

/**
 * makeMergeFunction for streamed merges (Sandbox.runFile): the tensors are read by the sandbox
 * child from disk; what comes back is base + merge(task vectors), encoded as `outDtype`.
 */
export function makeFileMergeFunction(source: string, sandbox: Pick<Sandbox, 'runFile' | 'prepare'>, opts: { stats?: ModelStats; seed?: number; limits?: Partial<SandboxLimits> } = {}): FileMergeFunction {
  const getState = stateOnce(source, sandbox, opts);
  return async (base, experts, outDtype, ctx, into) => {
    const st = await getState(experts.length);
    const full: MergeContext = { ...ctx, kind: ctx.kind ?? tensorKind(ctx.name), numModels: experts.length, shape: [...ctx.shape], ...(st === undefined ? {} : { state: st }) };
    const r = await sandbox.runFile(source, base, experts, outDtype, full, opts.limits, into);
    if (!r.ok) throw new AlgorithmRejected(r.category ?? 'runtime', `${r.message} [tensor ${ctx.name}]`);
    return r.bytes!;
  };
}
