/**
 * Algorithm factory over our own tiny Llama (src/nn): a model folder saved by the nn engine
 * (config.json, model.safetensors, tokenizer.json), sampled in batches.
 *
 * Uses the completion rendering: bos + the prompt's text, left-truncated so that prompt + maxTokens
 * fit the model's context (the prompt's last lines, `PROGRAM_HEADER`, are what the corpus trains on).
 * Generation stops at eos or the prompt's stop strings (the closing fence = end of program).
 * Sample i of a call draws from its own stream seeded by (seed, i), independent of batching.
 */
import * as O from '../nn/ops.ts';
import { loadModel } from '../nn/checkpoint.ts';
import { generateIds } from '../nn/generate.ts';
import type { Llama } from '../nn/model.ts';
import type { Tokenizer } from '../nn/tokenizer.ts';
import { extractProgram } from './extract.ts';
import { BUILTIN_DEFAULT_MAX_TOKENS, builtinPromptIds } from './builtin-prompt.ts';
import { checkSampleArgs } from './types.ts';
import type { AlgorithmFactory, Candidate, FactoryPrompt, SampleOptions } from './types.ts';

export interface BuiltinFactoryOptions {
  /** Rows per generation batch (default 8). */
  batchSize?: number;
  /** Default max new tokens (default 512). */
  defaultMaxTokens?: number;
  /**
   * Keep at most this many prompt tokens (the prompt's end; default: as many as fit). A tiny model
   * pre-trained on `PROGRAM_HEADER + program` needs little more than the header, and prefill cost
   * grows with the prompt.
   */
  maxPromptTokens?: number;
}

export class BuiltinFactory implements AlgorithmFactory {
  readonly name: string;
  private model: Llama | null;
  private readonly batchSize: number;
  private readonly defaultMaxTokens: number;
  private readonly maxPromptTokens: number;

  private constructor(
    dir: string,
    model: Llama,
    private readonly tok: Tokenizer,
    opts: BuiltinFactoryOptions,
  ) {
    this.name = `builtin:${dir}`;
    this.model = model;
    this.batchSize = opts.batchSize ?? 8;
    this.defaultMaxTokens = opts.defaultMaxTokens ?? BUILTIN_DEFAULT_MAX_TOKENS;
    this.maxPromptTokens = opts.maxPromptTokens ?? Infinity;
    if (!(this.maxPromptTokens >= 1) || (Number.isFinite(this.maxPromptTokens) && !Number.isInteger(this.maxPromptTokens))) throw new Error(`builtin factory: maxPromptTokens must be a positive integer, got ${this.maxPromptTokens}`);
    if (!(Number.isInteger(this.batchSize) && this.batchSize > 0)) throw new Error(`builtin factory: batchSize must be a positive integer, got ${this.batchSize}`);
    if (!(Number.isInteger(this.defaultMaxTokens) && this.defaultMaxTokens > 0)) throw new Error(`builtin factory: defaultMaxTokens must be a positive integer, got ${this.defaultMaxTokens}`);
  }

  /** Load a model folder (initialises the tensor backend). */
  static async load(dir: string, opts: BuiltinFactoryOptions = {}): Promise<BuiltinFactory> {
    await O.initBackend();
    const { model, tokenizer } = loadModel(dir, { path: 'the builtin factory (factory.kind builtin)' });
    if (!tokenizer) {
      model.dispose();
      throw new Error(`builtin factory: ${dir} has no tokenizer.json`);
    }
    try {
      return new BuiltinFactory(dir, model, tokenizer, opts);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  /**
   * Prompt token ids: bos + the last tokens of the text (at most maxPromptTokens, leaving room for
   * `maxTokens`). A `continuation` (the end of `text`) is kept whole after the shortened rest.
   */
  promptIds(text: string, maxTokens: number, continuation = ''): number[] {
    return builtinPromptIds(this.tok, this.live().config.max_position_embeddings, text, maxTokens, this.maxPromptTokens, continuation);
  }

  async sample(prompt: FactoryPrompt, n: number, opts: SampleOptions): Promise<Candidate[]> {
    checkSampleArgs(this.name, n, opts);
    const model = this.live();
    const budget = opts.maxTokens ?? this.defaultMaxTokens;
    // with a continuation the program (continuation + new tokens) keeps the same length budget
    const contLen = prompt.continuation ? this.tok.encode(prompt.continuation).length : 0;
    const maxTokens = Math.max(1, budget - contLen);
    const ids = this.promptIds(prompt.text, maxTokens, prompt.continuation);
    const out: Candidate[] = [];
    for (let i = 0; i < n; i += this.batchSize) {
      const rows = Math.min(this.batchSize, n - i);
      const t0 = performance.now();
      const gens = generateIds(
        model,
        this.tok,
        Array.from({ length: rows }, () => ids),
        { maxTokens, temperature: opts.temperature, topP: opts.topP ?? 1, seed: opts.seed, stop: prompt.stop },
        i,
      );
      const ms = (performance.now() - t0) / rows;
      for (const g of gens) {
        const raw = prompt.prefix + g.text;
        const ex = extractProgram(raw);
        out.push(ex.code !== null ? { code: ex.code, raw, tokens: g.ids.length, ms } : { code: null, raw, error: ex.reason, tokens: g.ids.length, ms });
      }
      // let timers and I/O run between batches (generation itself is synchronous)
      await new Promise((r) => setImmediate(r));
    }
    return out;
  }

  private live(): Llama {
    if (!this.model) throw new Error(`${this.name}: closed`);
    return this.model;
  }

  async close(): Promise<void> {
    this.model?.dispose();
    this.model = null;
  }
}
