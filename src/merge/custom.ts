/**
 * `merge_method: custom` — a merge algorithm written in the contract of docs/algorithm-contract.md
 * (typically one the Self-Developing loop discovered), run per tensor in the sandbox: the program
 * gets the task vectors (model − base) of one tensor, returns the merged task vector, and that is
 * added to the base. The program is validated (parse + smoke cascade) before any tensor is read,
 * and never trusted: limits apply to every call.
 *
 * Route of the tensors: the loop's streamed merge world's (`mergeFile`, Sandbox.runFile): the
 * sandbox child reads base and model tensors from their safetensors files, forms the task vectors,
 * runs the program, adds the result to the base, encodes it and hands the bytes back through a
 * scratch file, so no tensor data crosses the child's IPC channel. The engine falls back to `merge`
 * (task vectors sent to the child over IPC, the result sent back) only for what the file route
 * does not do: task_vector_base, inputs rounded to another `dtype:` first, stored F64 inputs, and
 * --allow-non-finite. Both routes give the same bytes (src/merge/custom-route.test.ts).
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { Sandbox, validateAlgorithm, makeMergeFunction, makeFileMergeFunction, transpileIfTypeScript, tensorKind, AlgorithmRejected, type ModelStats, type SandboxLimits } from '../sandbox/index.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { readRegularText } from '../io/files.ts';
import { axpy, dot, sub } from '../tensor/kernels.ts';
import type { MergeConfig } from './config.ts';
import type { MergeOptions } from './engine.ts';
import { layerOf } from './params.ts';
import { streamLimits } from './stream-world.ts';

export interface CustomAlgorithm {
  custom: NonNullable<MergeOptions['custom']>;
  /** Peak resident memory of the sandbox process (VmHWM; null without /proc or before it started): call before close(). */
  sandboxPeakRssBytes(): number | null;
  close(): void;
}

/** Limits for real merges: the element budget and the time limits scale with the largest tensor (the loop's formula). */
function limitsFor(maxNumel: number, models: number, timeScale = 1): Partial<SandboxLimits> {
  return streamLimits(maxNumel, models, timeScale);
}

/**
 * Whole-model statistics for a program's prepare(stats): per tensor, the norm of each task vector
 * and their pairwise cosines. Streams over the checkpoints one tensor at a time.
 */
function streamStats(base: Checkpoint, models: Checkpoint[], names: string[]): ModelStats {
  const stats: ModelStats = {};
  for (const name of names) {
    const b = base.readF32(name);
    const taus = models.map((m) => {
      const t = m.readF32(name);
      sub(t, t, b);
      return t;
    });
    const norms = taus.map((t) => Math.sqrt(dot(t, t)));
    const cosine = taus.map((a, i) => taus.map((c, j) => (norms[i]! > 0 && norms[j]! > 0 ? dot(a, c) / (norms[i]! * norms[j]!) : 0)));
    stats[name] = { shape: [...base.info(name).shape], layer: layerOf(name), kind: tensorKind(name), norms, cosine };
  }
  return stats;
}

export interface CustomAlgorithmOptions {
  seed?: number;
  timeScale?: number;
  /** 'file' (default): tensors merged from their files when the engine can (`mergeFile`); 'ipc': always sent over IPC (the fallback route, kept for comparison) */
  route?: 'file' | 'ipc';
}

/** Loads, validates and prepares the algorithm of a `merge_method: custom` config. */
export async function loadCustomAlgorithm(config: MergeConfig, opts: CustomAlgorithmOptions = {}): Promise<CustomAlgorithm> {
  const file = config.algorithm!;
  const source = readRegularText(file, 'algorithm file', 16 << 20);
  if (!config.base) throw new Error('merge_method: custom needs base_model (task vectors are taken relative to it)');
  const language = extname(file) === '.ts' ? 'ts' : 'js';
  const sandbox = new Sandbox();
  try {
    const verdict = await validateAlgorithm(source, { sandbox, language, seed: opts.seed ?? 0 });
    if (!verdict.ok) throw new Error(`algorithm ${file} rejected at the ${verdict.stage} stage (${verdict.category}): ${verdict.message}`);

    const base = Checkpoint.open(config.base.path);
    const models = config.models.filter((m) => m.path !== config.base!.path).map((m) => Checkpoint.open(m.path));
    let stats: ModelStats | undefined;
    let maxNumel = 0;
    try {
      const names = base.tensorNames();
      for (const n of names) maxNumel = Math.max(maxNumel, base.info(n).shape.reduce((a, b) => a * b, 1));
      if (verdict.hasPrepare) stats = streamStats(base, models, names.filter((n) => models.every((m) => m.has(n))));
    } finally {
      base.close();
      models.forEach((m) => m.close());
    }
    const limits = limitsFor(maxNumel, models.length, opts.timeScale);
    const js = transpileIfTypeScript(source, language);
    if (!js.ok) throw new Error(`algorithm ${file}: ${js.message}`);
    const fnOpts = { stats, seed: opts.seed ?? 0, limits };
    const mergeFn = makeMergeFunction(js.source, sandbox, fnOpts);
    const fileFn = opts.route === 'ipc' ? null : makeFileMergeFunction(js.source, sandbox, fnOpts);
    return {
      custom: {
        method: { name: 'custom', summary: `custom algorithm ${file}`, base: 'required', minModels: 1, globalParams: [], modelParams: [] },
        ...(fileFn && {
          mergeFile: async (input) => {
            try {
              return await fileFn(input.base, input.models, input.outDtype, { name: input.name, layer: input.layer, numLayers: input.numLayers, shape: [...input.shape], seed: input.seed });
            } catch (e) {
              if (e instanceof AlgorithmRejected && e.category === 'non-finite')
                throw new AlgorithmRejected(e.category, `${e.message.replace(/^non-finite: /, '')}; nothing was written (--allow-non-finite or allow_non_finite: true writes them anyway)`);
              throw e;
            }
          },
        }),
        merge: async (input) => {
          const base = input.base!;
          const taus = input.models.map((m) => {
            const t = new Float32Array(m.length);
            sub(t, m, base);
            return t;
          });
          const merged = await mergeFn(taus, { name: input.name, layer: input.layer, numLayers: input.numLayers, shape: [...input.shape], seed: input.seed });
          const out = input.out && input.out.length === base.length ? input.out : new Float32Array(base.length);
          out.set(merged);
          axpy(out, 1, base);
          return out;
        },
      },
      sandboxPeakRssBytes: () => {
        try {
          const m = sandbox.pid === undefined ? null : /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${sandbox.pid}/status`, 'utf8'));
          return m ? Number(m[1]) * 1024 : null;
        } catch {
          return null;
        }
      },
      close: () => sandbox.close(),
    };
  } catch (e) {
    sandbox.close();
    throw e;
  }
}
