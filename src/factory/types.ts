/**
 * The algorithm factory: a language model that writes merge-algorithm programs (JavaScript source
 * defining `function merge(taskVectors, ctx)`, see docs/algorithm-contract.md).
 *
 * Backends: `openai.ts` (any OpenAI-compatible HTTP endpoint), `llamacpp.ts` (a GGUF through
 * node-llama-cpp), `builtin.ts` (our tiny code model from src/nn).
 */

/** One chat message (OpenAI roles). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/**
 * The prompt in both renderings. Completion backends use `text` (which ends with the opening of
 * a code block, so the model continues with code) and prepend `prefix` to what the model writes
 * before extracting the program; chat backends use `messages`.
 */
export interface FactoryPrompt {
  /** Plain completion text for base/code models. */
  text: string;
  /** Chat rendering: one system and one user message. */
  messages: ChatMessage[];
  /**
   * What `text` already opened (e.g. "```js\n"): completion outputs are read as `prefix + output`
   * so that the fence extractor sees a whole block.
   */
  prefix: string;
  /** Stop strings for completion backends (the end of the code block / the end-of-program marker). */
  stop: string[];
  /**
   * The end of `text` (and of `prefix`) that is program text for the model to continue, e.g. the
   * first lines of a parent program (src/loop/sampling.ts). A backend that shortens long prompts
   * keeps all of it and shortens only what comes before; the builtin backend counts it against
   * `maxTokens` (the program's length budget).
   */
  continuation?: string;
}

export interface SampleOptions {
  /** Sampling temperature (0 = greedy where the backend supports it). */
  temperature: number;
  /** Nucleus mass (default 1 = off). */
  topP?: number;
  /** Base seed; sample i uses seed + i so the i-th candidate is reproducible on its own. */
  seed: number;
  /** Maximum new tokens per sample (backend default when omitted). */
  maxTokens?: number;
}

/** One sampled program. `code` is null when no `merge` function could be extracted (see `error`). */
export interface Candidate {
  /** The extracted program, or null. */
  code: string | null;
  /** The raw model output (for completion backends: prefix + generated text). */
  raw: string;
  /** Why there is no code (extraction failure, request failure, timeout). */
  error?: string;
  /** Generated tokens, when the backend reports them. */
  tokens?: number;
  /** Wall-clock milliseconds spent producing this candidate (batched backends: batch time / rows; retries and backoff included). */
  ms: number;
}

export interface AlgorithmFactory {
  readonly name: string;
  /** Draw `n` programs for `prompt`. A sample without a program gets `error`; an endpoint or configuration error (openai) rejects the whole call. */
  sample(prompt: FactoryPrompt, n: number, opts: SampleOptions): Promise<Candidate[]>;
  /** Release models, contexts and sockets. Idempotent. */
  close(): Promise<void>;
}

/** Check the common sampling arguments; throws a specific error. */
export function checkSampleArgs(backend: string, n: number, opts: SampleOptions): void {
  if (!Number.isInteger(n) || n < 0) throw new Error(`${backend}: n must be a non-negative integer, got ${n}`);
  if (!(opts.temperature >= 0) || !Number.isFinite(opts.temperature)) throw new Error(`${backend}: temperature must be a finite number >= 0, got ${opts.temperature}`);
  if (opts.topP !== undefined && !(opts.topP > 0 && opts.topP <= 1)) throw new Error(`${backend}: topP must be in (0, 1], got ${opts.topP}`);
  if (!Number.isInteger(opts.seed)) throw new Error(`${backend}: seed must be an integer, got ${opts.seed}`);
  if (opts.maxTokens !== undefined && !(Number.isInteger(opts.maxTokens) && opts.maxTokens > 0)) throw new Error(`${backend}: maxTokens must be a positive integer, got ${opts.maxTokens}`);
}
