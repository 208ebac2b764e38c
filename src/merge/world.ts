/**
 * In-memory merging for the loop: the seed and the experts are loaded once, task vectors
 * (expert − seed) are precomputed for the selected tensors, and each program yields merged weights
 * (seed + merged task vector on selected tensors, seed elsewhere) without touching disk.
 */
import { loadModel, Llama, paramShapes } from '../nn/index.ts';
import type { LlamaConfig } from '../nn/index.ts';
import type { TextTokenizer } from '../nn/hf-tokenizer.ts';
import { computeStats, tensorLayer, type MergeFunction, type ModelStats, type SandboxLimits } from '../sandbox/index.ts';
import { tensorSelector, type TensorFilter } from './tensor-filter.ts';
import { streamLimits } from './stream-world.ts';

export class MergeWorld {
  private statsCache: ModelStats | null = null;
  private readonly shapes: Map<string, number[]>;
  private constructor(
    readonly config: LlamaConfig,
    readonly tokenizer: TextTokenizer,
    readonly seed: Map<string, Float32Array>,
    /** Selected tensor names, in the seed's order. */
    readonly names: string[],
    /** Per selected tensor: one task vector per expert. */
    readonly taskVectors: Map<string, Float32Array[]>,
    readonly expertDirs: string[],
  ) {
    this.shapes = new Map(paramShapes(config));
  }

  /** Loads seed + experts (same architecture required) and precomputes the task vectors. */
  static load(seedDir: string, expertDirs: string[], filter: TensorFilter = 'mlp'): MergeWorld {
    if (expertDirs.length === 0) throw new Error('merge world: no experts given');
    const s = loadModel(seedDir, { tokenizer: 'any' }); // in-process scoring runs the seed's own tokenizer, whatever its layout
    if (!s.tokenizer) throw new Error(`${seedDir}: no tokenizer.json (the seed model needs one for evaluation)`);
    const seed = s.model.getWeights();
    s.model.dispose();
    const sel = tensorSelector(filter);
    const names = [...seed.keys()].filter(sel);
    if (names.length === 0) throw new Error(`merge world: tensor filter ${JSON.stringify(filter)} selects no tensor of ${seedDir}`);
    const tvs = new Map<string, Float32Array[]>(names.map((n) => [n, []]));
    for (const dir of expertDirs) {
      const e = loadModel(dir, { tokenizer: 'none' });
      const w = e.model.getWeights();
      e.model.dispose();
      for (const n of names) {
        const x = w.get(n);
        const b = seed.get(n)!;
        if (!x) throw new Error(`${dir}: tensor ${n} missing (expert does not match the seed ${seedDir})`);
        if (x.length !== b.length) throw new Error(`${dir}: tensor ${n} has ${x.length} elements, the seed has ${b.length}`);
        const t = new Float32Array(x.length);
        for (let i = 0; i < x.length; i++) t[i] = x[i]! - b[i]!;
        tvs.get(n)!.push(t);
      }
    }
    return new MergeWorld(s.config, s.tokenizer, seed, names, tvs, expertDirs);
  }

  /** Whole-model statistics for programs with prepare(stats). */
  stats(): ModelStats {
    this.statsCache ??= computeStats(this.names.map((n) => ({ name: n, shape: this.shapeOf(n), taskVectors: this.taskVectors.get(n)! })));
    return this.statsCache;
  }

  shapeOf(name: string): number[] {
    const sh = this.shapes.get(name);
    if (!sh) throw new Error(`merge world: unknown tensor ${name}`);
    return [...sh];
  }

  /** Sandbox limits large enough for the biggest selected tensor (the streamed world's formula). */
  limits(): Partial<SandboxLimits> {
    return streamLimits(Math.max(...this.names.map((n) => this.seed.get(n)!.length)), this.expertDirs.length);
  }

  /** Merged weights: seed + f(task vectors) on selected tensors (shared seed arrays elsewhere). */
  async merge(fn: MergeFunction, seed: number): Promise<Map<string, Float32Array>> {
    const out = new Map(this.seed);
    const numLayers = this.config.num_hidden_layers;
    for (const n of this.names) {
      const b = this.seed.get(n)!;
      const tv = await fn(this.taskVectors.get(n)!, { name: n, layer: tensorLayer(n), numLayers, shape: this.shapeOf(n), seed });
      if (tv.length !== b.length) throw new Error(`merge of ${n}: program returned ${tv.length} elements, expected ${b.length}`);
      const w = new Float32Array(b.length);
      for (let i = 0; i < b.length; i++) {
        const v = b[i]! + tv[i]!;
        if (!Number.isFinite(v)) throw new Error(`merge of ${n}: non-finite merged weight at ${i}`);
        w[i] = v;
      }
      out.set(n, w);
    }
    return out;
  }

  /** Plain task arithmetic on the selected tensors: seed + λ Σ τ_i (computed directly, no sandbox). */
  taskArithmetic(lambda: number): Map<string, Float32Array> {
    const out = new Map(this.seed);
    for (const n of this.names) {
      const b = this.seed.get(n)!;
      const w = Float32Array.from(b);
      for (const t of this.taskVectors.get(n)!) for (let i = 0; i < w.length; i++) w[i]! += lambda * t[i]!;
      out.set(n, w);
    }
    return out;
  }

  model(weights: Map<string, Float32Array>): Llama {
    return Llama.fromWeights(this.config, weights);
  }
}
