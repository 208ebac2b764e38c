import { readFileSync } from 'node:fs';
import { readRegularText } from '../io/files.ts';
import { parseArgs } from 'node:util';
import { UsageError, intOption, type Command, parseCli } from './command.ts';
import { uniformAt } from '../tensor/kernels.ts';
import { join, resolve } from 'node:path';
import { Sandbox } from '../sandbox/sandbox.ts';
import { validateAlgorithm, makeMergeFunction, transpileIfTypeScript, AlgorithmRejected, type TensorCase } from '../sandbox/validate.ts';
import { tensorKind, tensorLayer } from '../sandbox/types.ts';
import { MergeWorld } from '../merge/world.ts';
import { DEFAULT_CONFIG } from '../loop/config.ts';
import { defaultWorldDir, discoverWorld } from '../world/baselines.ts';
import { initBackend } from '../nn/index.ts';
import { inferNative } from '../nn/infer.ts';
import { evaluate } from '../eval/evaluate.ts';
import { loadGsm8k } from '../eval/gsm8k.ts';
import { BuiltinBackend } from '../eval/backends.ts';

const USAGE = `selfdev check-algorithm FILE [--world DIR] [--limit N] [--synthetic] [--json] [--seed N] [--timeout-ms MS] [--memory-mb MB]

Runs the validation cascade on a merge algorithm written in the contract of
docs/algorithm-contract.md (FILE: .js, or .ts which is transpiled first):
  1. parse (syntax errors with line:col)
  2. smoke run on small random tensors (shape, finiteness, zero task vectors -> ~0, determinism)
  3. real run: the tiny world's task vectors (experts - M0) on the tensors the loop merges
     (MLP, the loop's default tensorFilter); when it passes, the merge (M0 + merged task vector)
     is scored on the world's dev set (greedy, calculator on). Without a trained world (or with
     --synthetic): every tensor of a synthetic small Llama (2 layers, hidden 64, 3 experts), no score.
Prints the verdict, failure category and message, timings and the dev accuracy. Exit code 1 when
rejected.

  --world DIR       trained tiny world (roles from <stage>/world.json; M0 and the
                    experts are enough)                                   [world/models]
  --limit N         score only the first N dev questions                  [all]
  --synthetic       real stage on the synthetic small Llama even if a world exists
  --json            print one JSON object instead of text
  --seed N          seed of the synthetic tensors and of ctx.rng (default 1234)
  --timeout-ms MS   CPU-time limit per merge call (default 2000, or more for big world tensors)
  --memory-mb MB    isolate heap limit (default 32, or more for big world tensors)`;

/** Task vectors shaped like a small Llama: a shared direction plus per-expert noise. */
export function syntheticLlama(seed: number, numModels = 3, hidden = 64, inter = 128, vocab = 128, layers = 2): { tensors: TensorCase[]; numLayers: number } {
  const specs: Array<[string, number[]]> = [['model.embed_tokens.weight', [vocab, hidden]]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    specs.push(
      [`${p}input_layernorm.weight`, [hidden]],
      [`${p}self_attn.q_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.k_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.v_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.o_proj.weight`, [hidden, hidden]],
      [`${p}post_attention_layernorm.weight`, [hidden]],
      [`${p}mlp.gate_proj.weight`, [inter, hidden]],
      [`${p}mlp.up_proj.weight`, [inter, hidden]],
      [`${p}mlp.down_proj.weight`, [hidden, inter]],
    );
  }
  specs.push(['model.norm.weight', [hidden]], ['lm_head.weight', [vocab, hidden]]);
  const tensors = specs.map(([name, shape], ti) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const s0 = (seed * 7919 + ti * 104729) >>> 0;
    const taskVectors = Array.from({ length: numModels }, (_, m) => {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = 0.004 * (uniformAt(s0, i) - 0.5) + 0.01 * (uniformAt((s0 + 31 * (m + 1)) >>> 0, i) - 0.5);
      return out;
    });
    return { name, shape, layer: tensorLayer(name), kind: tensorKind(name), taskVectors };
  });
  return { tensors, numLayers: layers };
}

export const command: Command = {
  name: 'check-algorithm',
  summary: 'Validate a merge algorithm (JS/TS contract) in the sandbox and print the verdict.',
  usage: USAGE,
  async run(args) {
    const parsed = parseCli(() => parseArgs({
      args, allowPositionals: true,
      options: {
        json: { type: 'boolean' }, seed: { type: 'string' }, 'timeout-ms': { type: 'string' }, 'memory-mb': { type: 'string' },
        world: { type: 'string' }, limit: { type: 'string' }, synthetic: { type: 'boolean' },
      },
    }));
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new UsageError(`expects exactly one FILE, got ${positionals.length}\n\n${USAGE}`);
    const file = positionals[0]!;
    let source: string;
    try {
      source = readRegularText(file, 'algorithm file', 16 << 20); // a FIFO or folder is refused, not waited on
    } catch (e) {
      throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
    }
    const seed = intOption(values.seed, 'seed', 1234);
    const limit = intOption(values.limit, 'limit', undefined);
    if (limit === 0) throw new UsageError('--limit must be at least 1');
    if (values.synthetic && (values.world || values.limit)) throw new UsageError('--synthetic runs no world: give it without --world and --limit');
    const language = file.endsWith('.ts') ? 'ts' : 'js';

    // the real stage: the tiny world when there is one, else the synthetic Llama
    let world: WorldTarget | null = null;
    let fallback: string | null = null;
    if (!values.synthetic) {
      const dir = resolve(values.world ?? defaultWorldDir());
      // the engine first: loading the world builds its models (the fallback used to swallow the
      // "backend not initialized" error of a model built before this, and never scored anything)
      await initBackend();
      try {
        world = loadWorldTarget(dir);
      } catch (e) {
        // only a missing default world falls back; a world that is there but cannot be loaded is an error
        if (values.world || !(e instanceof WorldMissing)) throw new UsageError((e as Error).message);
        fallback = `no trained tiny world (${(e as Error).message.replace(/; train it with .*$/, '')}); real stage on a synthetic small Llama instead, no dev score`;
      }
    }
    if (fallback && !values.json) console.log(`note: ${fallback}`);
    const wl = world?.merge.limits() ?? {};
    const timeoutMs = intOption(values['timeout-ms'], 'timeout-ms', Math.max(2000, wl.timeoutMs ?? 0));
    const memoryMb = intOption(values['memory-mb'], 'memory-mb', Math.max(32, wl.memoryMb ?? 0));
    if (memoryMb < 8) throw new UsageError('--memory-mb must be at least 8');
    const limits = { timeoutMs, memoryMb, wallMs: Math.max(timeoutMs * 3 + 2000, wl.wallMs ?? 0), ...(wl.maxElements ? { maxElements: wl.maxElements } : {}) };
    const t0 = performance.now();
    const sandbox = new Sandbox({ limits });
    try {
      await sandbox.start();
      const startMs = performance.now() - t0;
      const real = world ? world.real : syntheticLlama(seed);
      const verdict = await validateAlgorithm(source, { sandbox, seed, language, real, limits });
      let dev: { n: number; strict: number; flexible: number; engine: string; mergeMs: number; evalMs: number; m0: { strict: number; flexible: number } | null } | null = null;
      let mergeError: string | null = null;
      if (verdict.ok && world) {
        const tr = transpileIfTypeScript(source, language);
        if (!tr.ok) throw new Error(tr.message);
        const t1 = performance.now();
        let weights: Map<string, Float32Array> | null = null;
        try {
          const fn = makeMergeFunction(tr.source, sandbox, { stats: verdict.hasPrepare ? world.merge.stats() : undefined, seed, limits });
          weights = await world.merge.merge(fn, seed);
        } catch (e) {
          mergeError = e instanceof AlgorithmRejected ? e.message : `runtime: ${(e as Error).message}`;
        }
        if (weights) {
          const mergeMs = performance.now() - t1;
          const t2 = performance.now();
          const s = await scoreOnDev(world, weights, limit);
          dev = { ...s, mergeMs, evalMs: performance.now() - t2, m0: limit === undefined ? world.m0Dev : null };
        }
      }
      const ok = verdict.ok && mergeError === null;
      const totalMs = performance.now() - t0;
      const realStage = world ? { world: world.dir, seedModel: world.seedName, experts: world.expertNames, tensorFilter: TENSOR_FILTER, tensors: world.real.tensors.length } : { world: null, synthetic: true, note: fallback };
      if (values.json) console.log(JSON.stringify({ file, ...verdict, ok, mergeError, realStage, dev, startMs, totalMs }));
      else {
        console.log(`${ok ? 'ACCEPTED' : 'REJECTED'} ${file}`);
        if (!verdict.ok) console.log(`  ${verdict.category} (at ${verdict.stage}): ${verdict.message}`);
        if (mergeError) console.log(`  ${mergeError} (at merge)`);
        console.log(`  real stage: ${world ? `tiny world ${world.dir}: ${world.seedName} + ${world.expertNames.join(', ')}, ${world.real.tensors.length} ${TENSOR_FILTER} tensors` : 'synthetic small Llama'}`);
        console.log(`  prepare(): ${verdict.hasPrepare ? 'yes' : 'no'}`);
        const t = verdict.timings;
        console.log(`  timings: parse ${t.parseMs.toFixed(1)} ms, smoke ${t.smokeMs.toFixed(1)} ms, real ${t.realMs.toFixed(1)} ms, ${t.runs} sandbox runs, sandbox start ${startMs.toFixed(0)} ms${dev ? `, merge ${dev.mergeMs.toFixed(0)} ms, dev eval ${(dev.evalMs / 1000).toFixed(1)} s` : ''}, total ${totalMs.toFixed(0)} ms`);
        if (dev) console.log(`  dev accuracy (n=${dev.n}, ${dev.engine} engine): strict ${(100 * dev.strict).toFixed(1)}%, flexible ${(100 * dev.flexible).toFixed(1)}%${dev.m0 ? `  (M0 alone: strict ${(100 * dev.m0.strict).toFixed(1)}%, flexible ${(100 * dev.m0.flexible).toFixed(1)}%, from its world.json)` : ''}`);
      }
      return ok ? 0 : 1;
    } finally {
      sandbox.close();
    }
  },
};

/** The loop's default tensor filter (src/loop/config.ts DEFAULT_CONFIG.tensorFilter). */
const TENSOR_FILTER = DEFAULT_CONFIG.tensorFilter;

interface WorldTarget {
  dir: string;
  seedName: string;
  expertNames: string[];
  merge: MergeWorld;
  real: { tensors: TensorCase[]; numLayers: number };
  dev: string;
  /** M0's dev accuracy as recorded by the world trainer (same decoding settings), if present. */
  m0Dev: { strict: number; flexible: number } | null;
}

/** Max new tokens of the dev score: the world trainer's own evaluation setting. */
const DEV_MAX_TOKENS = 96;

/** No trained world at the folder (absent, or no seed and expert trained yet): the default world may fall back. */
class WorldMissing extends Error {}

/** Loads M0 + experts of a trained world (throws naming what is missing). */
export function loadWorldTarget(dir: string): WorldTarget {
  let w: ReturnType<typeof discoverWorld>;
  try {
    w = discoverWorld(dir, undefined, { partial: true });
  } catch (e) {
    throw new WorldMissing((e as Error).message);
  }
  const merge = MergeWorld.load(w.seed, w.experts, TENSOR_FILTER);
  const tensors: TensorCase[] = merge.names.map((name) => ({ name, shape: merge.shapeOf(name), layer: tensorLayer(name), kind: tensorKind(name), taskVectors: merge.taskVectors.get(name)! }));
  let m0Dev: WorldTarget['m0Dev'] = null;
  try {
    const j = JSON.parse(readFileSync(join(w.seed, 'world.json'), 'utf8')) as { result?: { eval?: { dev?: { n?: number; strict?: number; flexible?: number } } } };
    const d = j.result?.eval?.dev;
    if (d && typeof d.strict === 'number' && typeof d.flexible === 'number') m0Dev = { strict: d.strict, flexible: d.flexible };
  } catch {
    m0Dev = null;
  }
  const name = (d: string) => w.names?.[d] ?? d;
  return { dir, seedName: name(w.seed), expertNames: w.experts.map(name), merge, real: { tensors, numLayers: merge.config.num_hidden_layers }, dev: w.dev, m0Dev };
}

async function scoreOnDev(world: WorldTarget, weights: Map<string, Float32Array>, limit: number | undefined): Promise<{ n: number; strict: number; flexible: number; engine: string }> {
  const problems = loadGsm8k(world.dev).map((d, i) => ({ ...d, index: i }));
  const model = world.merge.model(weights);
  try {
    const r = await evaluate(BuiltinBackend.fromModel(model, world.merge.tokenizer, { batchSize: 50 }), limit === undefined ? problems : problems.slice(0, limit), { maxTokens: DEV_MAX_TOKENS, calculator: true });
    return { n: r.n, strict: r.strict, flexible: r.flexible, engine: inferNative() ? 'native' : 'JavaScript' };
  } finally {
    model.dispose();
  }
}
