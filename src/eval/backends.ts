/**
 * Generation backends of the evaluator. A backend turns prompts into greedy completions, optionally
 * with calculator-augmented decoding (`<<EXPR=` → the decoder appends `VALUE>>` and the model goes
 * on, see calculator.ts):
 *
 * - `BuiltinBackend`: a model folder run by the tiny-Llama engine (src/nn; by default the framework-free
 *   decoder of src/nn/infer.ts), batched with per-row KV caches;
 *   the calculator uses the engine's per-row forcing hook (`onToken`).
 * - `OpenAIBackend`: any OpenAI-compatible `/v1/completions` endpoint (selfdev serve, vLLM,
 *   llama.cpp server…), temperature 0, with timeouts, retries with exponential backoff on
 *   429/5xx/network errors, and a concurrency limit. The calculator is implemented by generating in
 *   segments (`segmentedCompletion`): each request also stops at `=`; when the text so far ends with
 *   an open `<<EXPR=`, the value and `>>` are appended and a new request continues from the extended
 *   prompt. Cost: one request per `=` the model writes, plus one (≈ 2 + 2·steps requests per GSM8k
 *   answer), each re-sending the whole prompt (no prefix cache on our server). Which stop fired is
 *   read from the choice's `stop_reason` (vLLM and selfdev serve return it); a server without that
 *   field is switched to a fallback that stops at `=` only, checks the real stop strings on the
 *   client, and after each stop spends one extra 1-token request to tell `=` from end-of-text.
 *
 * Known differences between the two when a model is run both ways (greedy): the endpoint re-tokenises
 * prompt + text so far, so with a BPE tokenizer whose merges cross segment boundaries token sequences
 * may differ (with a byte-level tokenizer they are identical); the max-token budget of the endpoint
 * counts forced tokens through `usage.prompt_tokens` deltas, and a forced value is never cut by the
 * budget (the engine may cut it).
 */
import { calculatorCompletion } from './calculator.ts';
import { firstStopIndex } from './prompt.ts';
import type { Llama } from '../nn/model.ts';
import type { EngineModel } from '../nn/generate.ts';
import type { TextTokenizer } from '../nn/hf-tokenizer.ts';

export type FinishReason = 'eos' | 'stop' | 'length';

export interface CompletionRequest {
  /** New-token budget per prompt (forced calculator tokens included). */
  maxTokens: number;
  /** Stop strings; the returned text is cut before the first one. */
  stop: readonly string[];
  /** Calculator-augmented decoding. */
  calculator: boolean;
}

export interface Completion {
  /** Generated text, cut before the first stop string. */
  text: string;
  finish: FinishReason;
  /** Number of calculator values the decoder forced. */
  calculatorCalls: number;
}

export interface EvalBackend {
  /** e.g. `builtin:models/seed` or `openai:http://127.0.0.1:8080/v1/completions (tiny)`. */
  readonly description: string;
  /** Greedy completions, in prompt order. */
  complete(prompts: readonly string[], req: CompletionRequest): Promise<Completion[]>;
  close(): Promise<void>;
}

// ------------------------------------------------------------------------------ builtin engine

export interface EngineGenerateOptions {
  maxTokens: number;
  stop?: readonly string[];
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Rows per forward batch (default 32); lowered automatically for long prompts (memory bound). */
  batchSize?: number;
  calculator?: boolean;
  /** Decoding engine (generate.ts): 'infer' (default, framework-free) or 'tfjs' (the framework path, a baseline). */
  engine?: 'infer' | 'tfjs';
  /** More ids that end a row like eos (a chat model's end-of-turn token). */
  eosIds?: readonly number[];
}

export interface EngineGeneration {
  text: string;
  finish: FinishReason;
  /** Prompt tokens fed to the model (bos included, after left truncation). */
  promptTokens: number;
  /** Generated tokens (forced ones included, eos excluded). */
  completionTokens: number;
  /** The stop string that ended the row (finish 'stop'), else null. */
  stopString: string | null;
  calculatorCalls: number;
  /** Whether the prompt was left-truncated to fit max_position_embeddings. */
  truncated: boolean;
}

/** Largest B·L² (attention-mask floats of the first step) one forward batch of the tfjs engine may use. */
const MASK_BUDGET = 24e6;
/** Largest KV cache (floats) one batch of the infer engine may allocate (256 MB). */
const KV_BUDGET = 64e6;

/**
 * Run the engine on text prompts: bos + prompt tokens, left-truncated so that prompt + maxTokens
 * fits `max_position_embeddings` (as lm-eval truncates to max_length − max_gen_toks), rows chunked so
 * that a batch's KV cache (infer engine) or first-step attention mask (tfjs engine) stays bounded.
 * With `calculator`, the engine's forcing hook appends the calculator value after every generated
 * `<<EXPR=`. Greedy prompts are batched in order of length; with sampling, row i's stream is seeded
 * by (seed, i) whatever the chunking.
 */
export async function engineGenerate(model: EngineModel, tok: TextTokenizer, prompts: ReadonlyArray<string | readonly number[]>, o: EngineGenerateOptions): Promise<EngineGeneration[]> {
  const { generateIds } = await import('../nn/generate.ts');
  const maxPos = model.config.max_position_embeddings;
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1) throw new Error(`maxTokens must be a positive integer, got ${o.maxTokens}`);
  if (o.maxTokens >= maxPos) throw new Error(`maxTokens ${o.maxTokens} leaves no room for the prompt (max_position_embeddings ${maxPos})`);
  const keep = maxPos - o.maxTokens;
  const truncated = new Array<boolean>(prompts.length).fill(false);
  const pre = tok.promptPrefix;
  const encoded = prompts.map((p, k) => {
    // text: bos + text as the tokenizer files say (tokenizer.json's post-processor gives the same); ids: as given (a rendered chat)
    const ids = typeof p === 'string' ? tok.encodePrompt(p) : [...p];
    if (ids.length <= keep) return ids;
    truncated[k] = true;
    // cut from the left, keeping the prompt's leading special ids (bos)
    const head = pre.length < keep && pre.every((x, i) => ids[i] === x) ? pre.length : 0;
    return [...ids.slice(0, head), ...ids.slice(ids.length - keep + head)];
  });
  // Greedy rows do not depend on their batch, so batch prompts of similar length together (less
  // left padding in the prefill); sampled rows keep their order (row i's stream is seeded by i).
  const order = encoded.map((_, k) => k);
  if (!((o.temperature ?? 0) > 0)) order.sort((a, b) => encoded[a].length - encoded[b].length || a - b);
  const rows = order.map((k) => encoded[k]);
  const calls = new Array<number>(prompts.length).fill(0);
  const stop = o.stop ? [...o.stop] : [];
  const bsMax = Math.max(1, o.batchSize ?? 32);
  const out = new Array<EngineGeneration>(prompts.length);
  const engine = o.engine ?? 'infer';
  const c = model.config;
  const kvFloatsPerToken = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim;
  const fits = (n: number, L: number) => (engine === 'tfjs' ? n * L * L <= MASK_BUDGET : n * L * kvFloatsPerToken <= KV_BUDGET);
  let i = 0;
  while (i < rows.length) {
    let j = i;
    let L = 0;
    while (j < rows.length && j - i < bsMax) {
      const L2 = Math.max(L, rows[j].length + o.maxTokens);
      if (j > i && !fits(j - i + 1, L2)) break;
      L = L2;
      j++;
    }
    const gens = generateIds(model, tok, rows.slice(i, j), {
      maxTokens: o.maxTokens,
      temperature: o.temperature ?? 0,
      topP: o.topP ?? 1,
      seed: o.seed ?? 0,
      stop,
      engine,
      eosIds: o.eosIds,
      onToken: o.calculator
        ? (row, text) => {
            const f = calculatorCompletion(text);
            if (f === null) return null;
            calls[row]++;
            return tok.encodeContinuation(f);
          }
        : undefined,
    }, i);
    gens.forEach((g, k) => {
      let stopString: string | null = null;
      if (g.finish === 'stop') {
        // the engine cut the text before the earliest stop; find which one
        const full = tok.decodeContinuation(g.ids);
        stopString = stop.find((s) => s && full.startsWith(s, g.text.length)) ?? null;
      }
      const orig = order[i + k];
      out[orig] = { text: g.text, finish: g.finish, promptTokens: rows[i + k].length, completionTokens: g.ids.length, stopString, calculatorCalls: calls[i + k], truncated: truncated[orig] };
    });
    i = j;
  }
  return out;
}

export interface BuiltinBackendOptions {
  batchSize?: number;
  /** Decoding engine (default 'infer'; 'tfjs' = the framework path, for comparisons). */
  engine?: 'infer' | 'tfjs';
}

export class BuiltinBackend implements EvalBackend {
  readonly description: string;
  private constructor(
    /** A framework Llama (fromModel, or load with engine 'tfjs'), else the engine-only model of loadInferModel. */
    readonly model: EngineModel,
    readonly tokenizer: TextTokenizer,
    private readonly batchSize: number,
    where: string,
    private readonly engine: 'infer' | 'tfjs' = 'infer',
  ) {
    this.description = `builtin:${where}`;
  }

  /** Wrap an in-memory model (not disposed by close()). */
  static fromModel(model: Llama, tokenizer: TextTokenizer, opts: BuiltinBackendOptions = {}, where = '(in memory)'): BuiltinBackend {
    return new BuiltinBackend(model, tokenizer, opts.batchSize ?? 32, where, opts.engine);
  }

  /**
   * Load a model folder (config.json, model.safetensors, tokenizer.json): straight into the inference
   * engine (checkpoint.ts `loadInferModel`, any size) for the default engine; as a framework Llama
   * for engine 'tfjs'.
   */
  static async load(dir: string, opts: BuiltinBackendOptions = {}): Promise<BuiltinBackend> {
    const { existsSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`model folder not found: ${dir}`);
    if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: not a model folder (no config.json)`);
    if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`${dir}: no tokenizer.json (the builtin engine needs the model's tokenizer)`);
    // the shared reader: config.json checked against the tensors, tokenizer.json against the vocabulary,
    // before the engine sizes anything from them; the model's own tokenizer whatever its layout
    const { readLlamaFolder, checkTokenizerFile } = await import('../io/model-config.ts');
    const spec = readLlamaFolder(dir, { tokenizer: false });
    checkTokenizerFile(join(dir, 'tokenizer.json'), { vocabSize: spec.vocab_size });
    const { loadModel, loadInferModel } = await import('../nn/checkpoint.ts');
    const { endOfTextIds } = await import('../nn/load-tokenizer.ts');
    let loaded: { model: EngineModel; tokenizer: TextTokenizer | null };
    if (opts.engine === 'tfjs') {
      const O = await import('../nn/ops.ts');
      await O.initBackend();
      loaded = loadModel(dir, { tokenizer: 'any' });
    } else loaded = loadInferModel(dir, { tokenizer: 'any' });
    const { model, tokenizer } = loaded;
    if (!tokenizer) throw new Error(`${dir}: no tokenizer.json`);
    const b = new BuiltinBackend(model, tokenizer, opts.batchSize ?? 32, dir, opts.engine);
    b.owned = true;
    // every eos id config.json and generation_config.json list (e.g. Llama-3's [128001, 128009]) ends a row
    b.eosIds = endOfTextIds(dir).filter((id) => id < model.config.vocab_size);
    return b;
  }

  private owned = false;
  /** Ids that end a row besides config.json's first eos (load(): all of config.json's and generation_config.json's). */
  eosIds: readonly number[] = [];
  /** Prompts left-truncated so far (longer than max_position_embeddings − maxTokens). */
  truncatedPrompts = 0;

  async complete(prompts: readonly string[], req: CompletionRequest): Promise<Completion[]> {
    const gens = await engineGenerate(this.model, this.tokenizer, prompts, { maxTokens: req.maxTokens, stop: req.stop, calculator: req.calculator, batchSize: this.batchSize, engine: this.engine, eosIds: this.eosIds });
    this.truncatedPrompts += gens.filter((g) => g.truncated).length;
    return gens.map((g) => ({ text: g.text, finish: g.finish, calculatorCalls: g.calculatorCalls }));
  }

  async close(): Promise<void> {
    if (this.owned) {
      if ('dispose' in this.model) this.model.dispose(); // a framework Llama's tensors; an InferModel is plain arrays
      const { closeTokenizer } = await import('../nn/load-tokenizer.ts');
      await closeTokenizer(this.tokenizer);
    }
    this.owned = false;
  }
}

// ------------------------------------------------------------------------- segmented calculator

/** One raw completion call (no calculator): what an endpoint returns for one prompt. */
export interface RawCompletion {
  text: string;
  /** OpenAI finish_reason. */
  finishReason: 'stop' | 'length';
  /**
   * vLLM-style `stop_reason`: the matched stop string, null when the model ended the text (eos);
   * undefined when the server does not report it.
   */
  stopReason?: string | null;
  promptTokens?: number;
  completionTokens?: number;
}

export type RawComplete = (prompt: string, stop: readonly string[], maxTokens: number) => Promise<RawCompletion>;

/** Whether the backend's server reports `stop_reason` ('unknown' until the first stop is seen). */
export interface StopReasonSupport {
  value: 'unknown' | 'yes' | 'no';
}

/**
 * Greedy completion of one prompt with calculator-augmented decoding, over a raw completion
 * function (an endpoint). Every `<<EXPR=` the model writes is followed by the calculator's `VALUE>>`
 * before generation continues. Token budget: `maxTokens` new tokens in all, forced ones included when
 * the server reports `usage.prompt_tokens` (else only generated tokens are counted).
 */
export async function segmentedCompletion(raw: RawComplete, prompt: string, req: CompletionRequest, support: StopReasonSupport = { value: 'unknown' }): Promise<Completion> {
  const stop = [...req.stop].filter((s) => s.length > 0);
  if (!req.calculator) {
    const r = await raw(prompt, stop, req.maxTokens);
    const text = r.text;
    const cut = firstStopIndex(text, stop);
    if (cut >= 0) return { text: text.slice(0, cut), finish: 'stop', calculatorCalls: 0 };
    return { text, finish: finishOf(r), calculatorCalls: 0 };
  }
  let sofar = '';
  let calls = 0;
  let basePrompt: number | undefined;
  let generated = 0;
  let used = 0;
  const account = (r: RawCompletion) => {
    const c = r.completionTokens ?? Math.max(1, Math.ceil(r.text.length / 4));
    generated += c;
    if (r.promptTokens !== undefined && basePrompt === undefined) basePrompt = r.promptTokens;
    used = r.promptTokens !== undefined && basePrompt !== undefined ? r.promptTokens - basePrompt + c : generated;
  };
  for (let guard = 0; guard < 100_000; guard++) {
    const remaining = req.maxTokens - used;
    if (remaining <= 0) return { text: sofar, finish: 'length', calculatorCalls: calls };
    const fallback = support.value === 'no';
    const r = await raw(prompt + sofar, fallback ? ['='] : [...stop, '='], remaining);
    if (!fallback && r.finishReason === 'stop' && r.stopReason === undefined) {
      // the server does not say which stop fired: redo this segment in fallback mode
      support.value = 'no';
      continue;
    }
    if (!fallback && r.stopReason !== undefined && support.value === 'unknown') support.value = 'yes';
    account(r);
    sofar += r.text;
    // real stop strings: reported by the server, or (fallback / safety) found in the text
    const cut = firstStopIndex(sofar, stop);
    if (cut >= 0) return { text: sofar.slice(0, cut), finish: 'stop', calculatorCalls: calls };
    if (r.finishReason === 'length') {
      if (used >= req.maxTokens || r.text.length === 0) return { text: sofar, finish: 'length', calculatorCalls: calls };
      continue;
    }
    let sawEq: boolean;
    if (!fallback) {
      if (typeof r.stopReason === 'string' && r.stopReason !== '=') return { text: sofar, finish: 'stop', calculatorCalls: calls };
      sawEq = r.stopReason === '=';
    } else {
      // probe one token: '=' if the model wrote it, nothing if it ended the text
      const p = await raw(prompt + sofar, [], 1);
      sawEq = p.text.startsWith('=');
      if (!sawEq && p.text.length > 0) {
        // neither '=' nor end of text: should not happen with a deterministic greedy server
        throw new Error(`endpoint: inconsistent greedy continuation after a stop (got ${JSON.stringify(p.text)}); is temperature 0 honoured?`);
      }
    }
    if (!sawEq) return { text: sofar, finish: 'eos', calculatorCalls: calls };
    sofar += '=';
    const cut2 = firstStopIndex(sofar, stop);
    if (cut2 >= 0) return { text: sofar.slice(0, cut2), finish: 'stop', calculatorCalls: calls };
    const f = calculatorCompletion(sofar);
    if (f !== null) {
      sofar += f;
      calls++;
      const cut3 = firstStopIndex(sofar, stop);
      if (cut3 >= 0) return { text: sofar.slice(0, cut3), finish: 'stop', calculatorCalls: calls };
    }
  }
  throw new Error('segmentedCompletion: too many segments');
}

function finishOf(r: RawCompletion): FinishReason {
  if (r.finishReason === 'length') return 'length';
  return typeof r.stopReason === 'string' ? 'stop' : 'eos';
}

// ------------------------------------------------------------------------------ OpenAI endpoint

export interface OpenAIBackendOptions {
  /** Base URL (`http://host:port`, `…/v1`) or the full `…/v1/completions` URL. */
  endpoint: string;
  modelName: string;
  /** Default: env OPENAI_API_KEY when set. */
  apiKey?: string;
  /** Per-request timeout (default 120 s). */
  timeoutMs?: number;
  /** Retries after the first attempt on 429 / 5xx / network errors / timeouts (default 4). */
  retries?: number;
  /** First backoff delay, doubled each retry, ± 25 % jitter (default 500 ms). */
  backoffMs?: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Injected fetch (tests). */
  fetch?: typeof fetch;
}

export class EndpointError extends Error {
  override name = 'EndpointError';
}

/** Normalise an endpoint to its `/v1/completions` URL. */
export function completionsUrl(endpoint: string): string {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new Error(`endpoint '${endpoint}' is not a URL (expected e.g. http://127.0.0.1:8080/v1)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`endpoint '${endpoint}' must be http(s)`);
  const path = u.pathname.replace(/\/+$/, '');
  if (path.endsWith('/completions')) u.pathname = path;
  else if (path.endsWith('/v1')) u.pathname = `${path}/completions`;
  else u.pathname = `${path}/v1/completions`;
  return u.toString();
}

export class OpenAIBackend implements EvalBackend {
  readonly description: string;
  readonly url: string;
  private readonly o: Required<Omit<OpenAIBackendOptions, 'apiKey' | 'fetch'>> & { apiKey?: string; fetch: typeof fetch };
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  readonly stopReason: StopReasonSupport = { value: 'unknown' };
  /** Requests sent (retries included). */
  requests = 0;

  constructor(opts: OpenAIBackendOptions) {
    this.url = completionsUrl(opts.endpoint);
    if (!opts.modelName) throw new Error('the openai backend needs a model name (--model-name)');
    this.o = {
      endpoint: opts.endpoint,
      modelName: opts.modelName,
      apiKey: opts.apiKey ?? (process.env.OPENAI_API_KEY || undefined),
      timeoutMs: opts.timeoutMs ?? 120_000,
      retries: opts.retries ?? 4,
      backoffMs: opts.backoffMs ?? 500,
      concurrency: Math.max(1, opts.concurrency ?? 4),
      fetch: opts.fetch ?? fetch,
    };
    this.description = `openai:${this.url} (${opts.modelName})`;
  }

  private async slot<T>(f: () => Promise<T>): Promise<T> {
    while (this.active >= this.o.concurrency) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await f();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  /** One POST with retries; returns the parsed JSON body. */
  private async post(body: Record<string, unknown>): Promise<any> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.o.apiKey) headers.authorization = `Bearer ${this.o.apiKey}`;
    let lastErr = '';
    for (let attempt = 0; attempt <= this.o.retries; attempt++) {
      if (attempt > 0) {
        const d = this.o.backoffMs * 2 ** (attempt - 1) * (0.75 + 0.5 * Math.random());
        await new Promise((r) => setTimeout(r, d));
      }
      this.requests++;
      let res: Response;
      try {
        res = await this.o.fetch(this.url, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(this.o.timeoutMs) });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        lastErr = err.name === 'TimeoutError' ? `timed out after ${this.o.timeoutMs} ms` : `${err.message}${err.cause ? ` (${err.cause.code ?? err.cause.message})` : ''}`;
        continue;
      }
      const text = await res.text().catch(() => '');
      if (res.status === 429 || res.status >= 500) {
        lastErr = `HTTP ${res.status}: ${text.slice(0, 200)}`;
        continue;
      }
      if (!res.ok) throw new EndpointError(`${this.url}: HTTP ${res.status}: ${text.slice(0, 500)}`);
      try {
        return JSON.parse(text);
      } catch {
        throw new EndpointError(`${this.url}: response is not JSON: ${text.slice(0, 200)}`);
      }
    }
    throw new EndpointError(`${this.url}: unreachable after ${this.o.retries + 1} attempts: ${lastErr}`);
  }

  /** One /v1/completions call for one prompt (temperature 0). */
  readonly raw: RawComplete = (prompt, stop, maxTokens) =>
    this.slot(async () => {
      const body: Record<string, unknown> = { model: this.o.modelName, prompt, max_tokens: maxTokens, temperature: 0, n: 1 };
      if (stop.length) body.stop = [...stop];
      const j = await this.post(body);
      const c = j?.choices?.[0];
      if (!c || typeof c.text !== 'string') throw new EndpointError(`${this.url}: response has no choices[0].text: ${JSON.stringify(j).slice(0, 200)}`);
      const out: RawCompletion = { text: c.text, finishReason: c.finish_reason === 'length' ? 'length' : 'stop' };
      if ('stop_reason' in c) out.stopReason = typeof c.stop_reason === 'string' ? c.stop_reason : null;
      if (Number.isInteger(j?.usage?.prompt_tokens)) out.promptTokens = j.usage.prompt_tokens;
      if (Number.isInteger(j?.usage?.completion_tokens)) out.completionTokens = j.usage.completion_tokens;
      return out;
    });

  async complete(prompts: readonly string[], req: CompletionRequest): Promise<Completion[]> {
    return Promise.all(prompts.map((p) => segmentedCompletion(this.raw, p, req, this.stopReason)));
  }

  async close(): Promise<void> {}
}

// ------------------------------------------------------------------------------------ factory

export type BackendSpec =
  | { kind: 'builtin'; model: string; batchSize?: number }
  | ({ kind: 'openai' } & OpenAIBackendOptions);

/** Open a backend from a spec (a model folder for the builtin engine, or an endpoint). */
export async function openBackend(spec: BackendSpec): Promise<EvalBackend> {
  if (spec.kind === 'builtin') return BuiltinBackend.load(spec.model, { batchSize: spec.batchSize });
  return new OpenAIBackend(spec);
}
