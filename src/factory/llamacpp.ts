/**
 * Algorithm factory over a GGUF model through node-llama-cpp (CPU only, prebuilt binaries, never a
 * source build). The library is imported lazily, so nothing is loaded unless this backend is used.
 *
 * Completion rendering: the prompt's text is tokenised, left-truncated so that prompt + maxTokens
 * fit the context, and continued with temperature / top-p / seed sampling until an end-of-generation
 * token, a stop string of the prompt, or maxTokens (`maxPromptTokens` shortens the prompt further, as
 * the builtin factory does for our tiny code model). Sample i uses seed `opts.seed + i` (mod 2^32 − 1). With
 * `sequences` > 1 that many samples are generated concurrently in one context.
 */
import { extractProgram } from './extract.ts';
import { checkSampleArgs } from './types.ts';
import type { AlgorithmFactory, Candidate, FactoryPrompt, SampleOptions } from './types.ts';

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Token = import('node-llama-cpp').Token;
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
type LlamaModel = Awaited<ReturnType<Llama['loadModel']>>;
type LlamaContext = Awaited<ReturnType<LlamaModel['createContext']>>;
type LlamaCompletion = InstanceType<NodeLlamaCpp['LlamaCompletion']>;

export interface LlamaCppFactoryOptions {
  /** Context size in tokens (default: min(4096, the model's training context)). */
  contextSize?: number;
  /**
   * CPU threads for evaluation (default 1). On an oversubscribed machine llama.cpp's thread
   * barriers collapse: measured here (2 cores, load ~10), a 32-wide model generated 64 tokens in
   * 21.7 s with 2 threads and in 0.06 s with 1.
   */
  threads?: number;
  /** Samples generated concurrently, one context sequence each (default 1). */
  sequences?: number;
  /** Default max new tokens (default 1024). */
  defaultMaxTokens?: number;
  /** Keep at most this many prompt tokens (the end of the text; default: as many as fit), as the builtin factory's maxPromptTokens. */
  maxPromptTokens?: number;
}

export class LlamaCppFactory implements AlgorithmFactory {
  readonly name: string;
  private closed = false;
  private readonly defaultMaxTokens: number;

  private constructor(
    path: string,
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly completions: LlamaCompletion[],
    defaultMaxTokens: number,
    private readonly maxPromptTokens: number,
  ) {
    this.name = `llamacpp:${path}`;
    this.defaultMaxTokens = defaultMaxTokens;
  }

  /** Load a GGUF file. Throws a specific error when the library or the file is unusable. */
  static async load(modelPath: string, opts: LlamaCppFactoryOptions = {}): Promise<LlamaCppFactory> {
    const { existsSync } = await import('node:fs');
    if (!existsSync(modelPath)) throw new Error(`llamacpp factory: model file not found: ${modelPath}`);
    const sequences = opts.sequences ?? 1;
    const threads = opts.threads ?? 1;
    const defaultMaxTokens = opts.defaultMaxTokens ?? 1024;
    const maxPromptTokens = opts.maxPromptTokens ?? Infinity;
    if (!(maxPromptTokens >= 1) || (Number.isFinite(maxPromptTokens) && !Number.isInteger(maxPromptTokens))) throw new Error(`llamacpp factory: maxPromptTokens must be a positive integer, got ${maxPromptTokens}`);
    for (const [k, v] of Object.entries({ sequences, threads, defaultMaxTokens })) {
      if (!(Number.isInteger(v) && v > 0)) throw new Error(`llamacpp factory: ${k} must be a positive integer, got ${v}`);
    }
    let nlc: NodeLlamaCpp;
    try {
      nlc = await import('node-llama-cpp');
    } catch (e) {
      throw new Error(`llamacpp factory: cannot load node-llama-cpp (${(e as Error).message})`);
    }
    const llama = await nlc.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: nlc.LlamaLogLevel.error, maxThreads: threads });
    let model: LlamaModel | null = null;
    try {
      model = await llama.loadModel({ modelPath, gpuLayers: 0 });
      const contextSize = opts.contextSize ?? Math.min(4096, model.trainContextSize);
      if (!(Number.isInteger(contextSize) && contextSize > 1)) throw new Error(`llamacpp factory: contextSize must be an integer > 1, got ${contextSize}`);
      const context = await model.createContext({ contextSize, sequences, threads });
      const completions = Array.from({ length: sequences }, () => new nlc.LlamaCompletion({ contextSequence: context.getSequence() }));
      return new LlamaCppFactory(modelPath, llama, model, context, completions, defaultMaxTokens, maxPromptTokens);
    } catch (e) {
      await model?.dispose();
      await llama.dispose();
      const msg = (e as Error).message;
      throw new Error(msg.startsWith('llamacpp factory') ? msg : `llamacpp factory: cannot load ${modelPath}: ${msg}`);
    }
  }

  get contextSize(): number {
    return this.context.contextSize;
  }

  /** Prompt tokens that leave room for `maxTokens` (and a beginning-of-text token). */
  promptTokens(text: string, maxTokens: number): number[] {
    const room = Math.min(this.maxPromptTokens, this.context.contextSize - maxTokens - 1);
    if (room < 1) throw new Error(`llamacpp factory: maxTokens ${maxTokens} leaves no room for a prompt in a context of ${this.context.contextSize} tokens`);
    const ids = this.model.tokenize(text) as number[];
    return ids.slice(Math.max(0, ids.length - room));
  }

  async sample(prompt: FactoryPrompt, n: number, opts: SampleOptions): Promise<Candidate[]> {
    if (this.closed) throw new Error(`${this.name}: closed`);
    checkSampleArgs(this.name, n, opts);
    const maxTokens = opts.maxTokens ?? this.defaultMaxTokens;
    const input = this.promptTokens(prompt.text, maxTokens);
    const out = new Array<Candidate>(n);
    let next = 0;
    const worker = async (completion: LlamaCompletion) => {
      while (next < n && !this.closed) {
        const i = next++;
        out[i] = await this.one(completion, prompt, input, maxTokens, opts, i);
      }
    };
    await Promise.all(this.completions.slice(0, Math.max(1, Math.min(n, this.completions.length))).map(worker));
    for (let i = 0; i < n; i++) out[i] ??= { code: null, raw: '', error: 'factory closed before this sample ran', ms: 0 };
    return out;
  }

  private async one(completion: LlamaCompletion, prompt: FactoryPrompt, input: number[], maxTokens: number, opts: SampleOptions, i: number): Promise<Candidate> {
    const t0 = performance.now();
    const ids: Token[] = [];
    try {
      const res = await completion.generateCompletionWithMeta(input as never, {
        maxTokens,
        temperature: opts.temperature,
        topP: opts.topP,
        // the loop samples with temperature and top-p only: no top-k (llama.cpp: 40) and no repeat penalty (node-llama-cpp: on)
        topK: 0,
        repeatPenalty: false,
        // llama.cpp takes an unsigned 32-bit seed and reads 2^32 − 1 as "random": stay in [0, 2^32 − 2]
        seed: (opts.seed + i) % 0xffffffff,
        customStopTriggers: prompt.stop.filter((s) => s.length > 0),
        trimWhitespaceSuffix: false,
        disableContextShift: true,
        onToken: (t) => {
          ids.push(...t);
        },
      });
      // node-llama-cpp checks maxTokens only after a token that completes a UTF-8 character, so a
      // partial character at the limit gets one token more: keep the first maxTokens tokens' text
      const text = ids.length > maxTokens ? this.model.detokenize(ids.slice(0, maxTokens)) : res.response;
      const tokens = Math.min(ids.length, maxTokens);
      const raw = prompt.prefix + text;
      const ex = extractProgram(raw);
      const ms = performance.now() - t0;
      return ex.code !== null ? { code: ex.code, raw, tokens, ms } : { code: null, raw, error: ex.reason, tokens, ms };
    } catch (e) {
      return { code: null, raw: '', error: `llama.cpp generation failed: ${(e as Error).message}`, tokens: Math.min(ids.length, maxTokens), ms: performance.now() - t0 };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.completions) c.dispose();
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}
