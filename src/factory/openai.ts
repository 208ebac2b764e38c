/**
 * Algorithm factory over any OpenAI-compatible HTTP endpoint (vLLM, llama.cpp server, Ollama,
 * `selfdev serve`), with Node's built-in fetch.
 *
 * One request per sample, so servers that only allow n = 1 work. Sample i sends the seed
 * `seedForRow(opts.seed, i)`, an integer in [0, 2^32): inside every range real servers take (vLLM: a
 * signed 64-bit integer; llama-server: unsigned 32-bit, where 2^32 − 1 alone means "random", a
 * 1-in-2^32 chance per sample; TGI: unsigned 64-bit; OpenAI: an integer). It is distinct per sample,
 * and on a server running selfdev's engine (`selfdev serve`) it selects exactly the stream row i of
 * the in-process builtin factory samples from, so the same model gives the same programs in and out
 * of process (with `promptStyle: builtin`, below).
 *
 * Each request has its own timeout (covering the body); 429, 408, 5xx, network errors and timeouts
 * are retried with exponential backoff and seeded jitter (a `Retry-After` header is honoured,
 * capped). A request that still fails — any other 4xx at once (a wrong URL, an unknown model, a
 * rejected field, a missing key), the others after the retries — rejects the whole `sample` call
 * with a `FactoryEndpointError` naming the endpoint, the status, the server's text and what to
 * change: an endpoint or configuration error is not a bad program, so nothing of the batch is
 * returned. A reply without a program is an ordinary failed sample (`code: null`). At most
 * `concurrency` requests are in flight.
 *
 * Prompt styles: `paper` (default) sends the paper's full prompt (chat messages, or the completion
 * text); `builtin` sends what the builtin factory feeds our tiny code model: bos + the last
 * `maxPromptTokens` tokens of the completion text, as token ids (completions mode only; the
 * tokenizer and context length are read from the `tokenizer` folder).
 */
import { Rng, seedForRow } from '../nn/rng.ts';
import type { Tokenizer } from '../nn/tokenizer.ts';
import { builtinPromptIds, loadPromptTokenizer } from './builtin-prompt.ts';
import { extractProgram } from './extract.ts';
import { checkSampleArgs } from './types.ts';
import type { AlgorithmFactory, Candidate, FactoryPrompt, SampleOptions } from './types.ts';

export interface OpenAIFactoryOptions {
  /** Base URL including the version path, e.g. http://127.0.0.1:8080/v1 */
  baseURL: string;
  /** Model name sent in every request. */
  model: string;
  /** `chat` → /chat/completions with prompt.messages; `completions` → /completions with prompt.text. Default chat. */
  mode?: 'chat' | 'completions';
  /** Environment variable holding the API key (default OPENAI_API_KEY); no header when unset. */
  apiKeyEnv?: string;
  /** Per-request timeout in ms, body included (default 120000). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 4). */
  retries?: number;
  /** First backoff delay in ms (default 500); doubles per retry. */
  backoffMs?: number;
  /** Cap on one backoff delay, Retry-After included (default 30000). */
  maxBackoffMs?: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Send `seed` in the request body (default true). */
  sendSeed?: boolean;
  /** Extra fields merged into every request body (e.g. {repeat_penalty: 1.1}). */
  extraBody?: Record<string, unknown>;
  /** Default max_tokens when the caller gives none (default 1024). */
  defaultMaxTokens?: number;
  /** `paper` (default): the full prompt; `builtin`: the builtin model's own prompt as token ids (completions mode; needs `tokenizer`). */
  promptStyle?: 'paper' | 'builtin';
  /** promptStyle builtin: the served model's folder (tokenizer.json, config.json). */
  tokenizer?: string;
  /** promptStyle builtin: keep at most this many prompt tokens (the end of the text; default: as many as fit). */
  maxPromptTokens?: number;
}

/**
 * The endpoint or its configuration is wrong (HTTP 4xx other than 408/429, no connection after the
 * retries, a server that keeps failing, an unknown model): the caller must stop, not record samples.
 */
export class FactoryEndpointError extends Error {
  override name = 'FactoryEndpointError';
}

/** What to change, by HTTP status (or network failure), for a FactoryEndpointError. */
function advice(status: number | null, url: string, model: string, keyEnv: string, message = ''): string {
  if (status === null && /^timeout/.test(message)) return 'the server did not answer in time: check its log, or raise factory.timeoutMs';
  if (status === null && /^invalid JSON/.test(message)) return 'the server does not answer in the OpenAI format: check factory.url';
  if (status === null) return `is the server running? start it, or fix factory.url (now ${url})`;
  if (status === 401 || status === 403) return `the server refused the credentials: set the API key in the environment variable ${keyEnv} (factory.apiKeyEnv)`;
  if (status === 404) return `check factory.url (the base URL with its version path, e.g. http://HOST:PORT/v1) and factory.model '${model}' (GET …/models lists the ids the server serves)`;
  if (status === 400 || status === 422) return 'the server rejected a request field (see its message): change factory.maxTokens, factory.extraBody or factory.mode, or the server\'s own limits';
  if (status >= 500 || status === 429 || status === 408) return 'the server kept failing after the retries: check its log, or raise factory.retries / factory.timeoutMs';
  return 'check factory.url, factory.model and the server\'s documentation';
}

/** An error that says whether retrying may help. */
class RequestError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs: number | null = null,
    /** HTTP status, or null for a network failure / timeout / bad body. */
    readonly status: number | null = null,
  ) {
    super(message);
  }
}

export class OpenAIFactory implements AlgorithmFactory {
  readonly name: string;
  private readonly o: Required<Omit<OpenAIFactoryOptions, 'extraBody' | 'tokenizer' | 'maxPromptTokens'>> & { extraBody: Record<string, unknown>; maxPromptTokens: number };
  private readonly promptTok: { tok: Tokenizer; ctx: number } | null;
  private readonly url: string;
  private readonly base: string;
  private readonly closer = new AbortController();
  private closed = false;

  constructor(opts: OpenAIFactoryOptions) {
    let base: URL;
    try {
      base = new URL(opts.baseURL);
    } catch {
      throw new Error(`openai factory: baseURL ${JSON.stringify(opts.baseURL)} is not a URL`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error(`openai factory: baseURL must be http(s), got ${base.protocol}`);
    if (!opts.model) throw new Error('openai factory: model is required');
    const mode = opts.mode ?? 'chat';
    if (mode !== 'chat' && mode !== 'completions') throw new Error(`openai factory: mode must be "chat" or "completions", got ${JSON.stringify(mode)}`);
    this.o = {
      baseURL: opts.baseURL,
      model: opts.model,
      mode,
      apiKeyEnv: opts.apiKeyEnv ?? 'OPENAI_API_KEY',
      timeoutMs: opts.timeoutMs ?? 120_000,
      retries: opts.retries ?? 4,
      backoffMs: opts.backoffMs ?? 500,
      maxBackoffMs: opts.maxBackoffMs ?? 30_000,
      concurrency: opts.concurrency ?? 4,
      sendSeed: opts.sendSeed ?? true,
      defaultMaxTokens: opts.defaultMaxTokens ?? 1024,
      extraBody: opts.extraBody ?? {},
      promptStyle: opts.promptStyle ?? 'paper',
      maxPromptTokens: opts.maxPromptTokens ?? Infinity,
    };
    if (this.o.promptStyle !== 'paper' && this.o.promptStyle !== 'builtin') throw new Error(`openai factory: promptStyle must be "paper" or "builtin", got ${JSON.stringify(this.o.promptStyle)}`);
    if (this.o.promptStyle === 'builtin') {
      if (mode !== 'completions') throw new Error('openai factory: promptStyle builtin sends token ids, which only /completions takes: set mode completions');
      if (!opts.tokenizer) throw new Error('openai factory: promptStyle builtin needs tokenizer (the served model\'s folder, for its tokenizer.json and context length)');
      if (!(this.o.maxPromptTokens >= 1) || (Number.isFinite(this.o.maxPromptTokens) && !Number.isInteger(this.o.maxPromptTokens))) throw new Error(`openai factory: maxPromptTokens must be a positive integer, got ${this.o.maxPromptTokens}`);
      this.promptTok = loadPromptTokenizer(opts.tokenizer, 'openai factory');
    } else {
      if (opts.maxPromptTokens !== undefined || opts.tokenizer !== undefined) throw new Error('openai factory: tokenizer and maxPromptTokens belong to promptStyle builtin (the paper style sends the whole prompt)');
      this.promptTok = null;
    }
    for (const k of ['timeoutMs', 'concurrency', 'defaultMaxTokens'] as const) {
      if (!(Number.isInteger(this.o[k]) && this.o[k] > 0)) throw new Error(`openai factory: ${k} must be a positive integer, got ${this.o[k]}`);
    }
    for (const k of ['retries', 'backoffMs', 'maxBackoffMs'] as const) {
      if (!(Number.isInteger(this.o[k]) && this.o[k] >= 0)) throw new Error(`openai factory: ${k} must be a non-negative integer, got ${this.o[k]}`);
    }
    this.base = base.href.replace(/\/+$/, '');
    this.url = this.base + (mode === 'chat' ? '/chat/completions' : '/completions');
    this.name = `openai:${mode}:${opts.model}@${base.host}`;
  }

  async sample(prompt: FactoryPrompt, n: number, opts: SampleOptions): Promise<Candidate[]> {
    if (this.closed) throw new Error(`${this.name}: closed`);
    checkSampleArgs(this.name, n, opts);
    const out = new Array<Candidate>(n);
    let next = 0;
    let failed: FactoryEndpointError | null = null;
    const worker = async () => {
      while (next < n && !this.closed && !failed) {
        const i = next++;
        try {
          out[i] = await this.one(prompt, opts, i);
        } catch (e) {
          failed ??= e as FactoryEndpointError;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(n, this.o.concurrency) }, worker));
    if (failed) throw failed;
    for (let i = 0; i < n; i++) out[i] ??= { code: null, raw: '', error: 'factory closed before this sample ran', ms: 0 };
    return out;
  }

  /**
   * GET {url}/models before sampling: an unreachable server or a model id it does not list is a
   * FactoryEndpointError. A server without the route (404/405) or with an unexpected body passes:
   * the first request then tells.
   */
  async checkModel(): Promise<void> {
    const url = `${this.base}/models`;
    const headers: Record<string, string> = { accept: 'application/json' };
    const key = process.env[this.o.apiKeyEnv];
    if (key) headers.authorization = `Bearer ${key}`;
    let res: Response;
    let text: string;
    let lastErr = '';
    for (let attempt = 0; ; attempt++) {
      try {
        res = await fetch(url, { headers, signal: AbortSignal.timeout(this.o.timeoutMs) });
        text = await res.text();
        break;
      } catch (e) {
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        lastErr = cause?.code ?? cause?.message ?? (e as Error).message;
        if (attempt >= this.o.retries) throw new FactoryEndpointError(`openai factory: GET ${url} failed after ${attempt + 1} attempt(s): ${lastErr}; ${advice(null, this.base, this.o.model, this.o.apiKeyEnv)}`);
        await this.sleep(backoffDelay(attempt, this.o.backoffMs, this.o.maxBackoffMs, 0.5));
      }
    }
    if (res.status === 401 || res.status === 403) throw new FactoryEndpointError(`openai factory: GET ${url} → HTTP ${res.status}: ${errorMessage(text)}; ${advice(res.status, this.base, this.o.model, this.o.apiKeyEnv)}`);
    if (!res.ok) return;
    let ids: string[] | null = null;
    try {
      const data = (JSON.parse(text) as { data?: unknown }).data;
      if (Array.isArray(data)) ids = data.map((m) => String((m as { id?: unknown })?.id));
    } catch {
      /* not the OpenAI shape: let the first request tell */
    }
    if (ids && !ids.includes(this.o.model)) throw new FactoryEndpointError(`openai factory: the server at ${this.base} does not serve model '${this.o.model}' (GET ${url} lists: ${ids.join(', ') || 'nothing'}); set factory.model to one of these ids`);
  }

  /** The request body of sample `seed` (exported for tests through `requestBody`). */
  private body(prompt: FactoryPrompt, opts: SampleOptions, seed: number): Record<string, unknown> {
    const budget = opts.maxTokens ?? this.o.defaultMaxTokens;
    const b: Record<string, unknown> = { model: this.o.model, temperature: opts.temperature, top_p: opts.topP ?? 1, max_tokens: budget, n: 1, stream: false };
    if (this.o.sendSeed) b.seed = seed;
    if (this.o.mode === 'chat') b.messages = prompt.messages;
    else {
      if (this.promptTok) {
        // as the builtin factory: a continuation counts against the program's length budget
        const contLen = prompt.continuation ? this.promptTok.tok.encode(prompt.continuation).length : 0;
        const maxTokens = Math.max(1, budget - contLen);
        b.max_tokens = maxTokens;
        b.prompt = builtinPromptIds(this.promptTok.tok, this.promptTok.ctx, prompt.text, maxTokens, this.o.maxPromptTokens, prompt.continuation);
      } else b.prompt = prompt.text;
      if (prompt.stop.length) b.stop = prompt.stop;
    }
    return { ...b, ...this.o.extraBody };
  }

  /** The JSON body sample `i` of a call with `opts` sends (tests, docs). */
  requestBody(prompt: FactoryPrompt, opts: SampleOptions, i: number): Record<string, unknown> {
    return this.body(prompt, opts, seedForRow(opts.seed, i));
  }

  private async one(prompt: FactoryPrompt, opts: SampleOptions, i: number): Promise<Candidate> {
    const t0 = performance.now();
    const seed = seedForRow(opts.seed, i);
    const rng = new Rng(seed ^ 0x5eed);
    const body = JSON.stringify(this.body(prompt, opts, seed));
    let lastErr = '';
    for (let attempt = 0; attempt <= this.o.retries; attempt++) {
      if (this.closed) return { code: null, raw: '', error: 'factory closed', ms: performance.now() - t0 };
      let reply: { text: string; tokens?: number };
      try {
        reply = await this.request(body);
      } catch (e) {
        const err = e instanceof RequestError ? e : new RequestError(`network error: ${(e as Error).message}`, true);
        lastErr = err.message;
        if (this.closed) return { code: null, raw: '', error: 'factory closed', ms: performance.now() - t0 };
        if (!err.retryable || attempt === this.o.retries) {
          const tries = attempt + 1;
          throw new FactoryEndpointError(`openai factory: ${lastErr}${tries > 1 ? ` (after ${tries} attempts)` : ''}; ${advice(err.status, this.base, this.o.model, this.o.apiKeyEnv, lastErr)}`);
        }
        await this.sleep(backoffDelay(attempt, this.o.backoffMs, this.o.maxBackoffMs, rng.next(), err.retryAfterMs));
        continue;
      }
      const raw = this.o.mode === 'completions' ? prompt.prefix + reply.text : reply.text;
      const ex = extractProgram(raw);
      const ms = performance.now() - t0;
      return ex.code !== null ? { code: ex.code, raw, tokens: reply.tokens, ms } : { code: null, raw, error: ex.reason, tokens: reply.tokens, ms };
    }
    return { code: null, raw: '', error: lastErr, ms: performance.now() - t0 };
  }

  /** One HTTP attempt; resolves with the generated text or throws a RequestError. */
  private async request(body: string): Promise<{ text: string; tokens?: number }> {
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, this.o.timeoutMs);
    const onClose = () => ac.abort();
    this.closer.signal.addEventListener('abort', onClose);
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    const key = process.env[this.o.apiKeyEnv];
    if (key) headers.authorization = `Bearer ${key}`;
    try {
      let res: Response;
      let text: string;
      try {
        res = await fetch(this.url, { method: 'POST', headers, body, signal: ac.signal });
        text = await res.text();
      } catch (e) {
        if (timedOut) throw new RequestError(`timeout after ${this.o.timeoutMs} ms (POST ${this.url})`, true);
        if (this.closer.signal.aborted) throw new RequestError('factory closed', false);
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        throw new RequestError(`network error: ${cause?.code ?? cause?.message ?? (e as Error).message} (POST ${this.url})`, true);
      }
      if (!res.ok) {
        const retryable = res.status === 429 || res.status === 408 || res.status >= 500;
        throw new RequestError(`POST ${this.url} → HTTP ${res.status}: ${errorMessage(text)}`, retryable, retryAfter(res.headers.get('retry-after')), res.status);
      }
      let j: any;
      try {
        j = JSON.parse(text);
      } catch {
        throw new RequestError(`invalid JSON from ${this.url}: ${snippet(text)}`, true);
      }
      const choice = j?.choices?.[0];
      const out = this.o.mode === 'chat' ? choice?.message?.content : choice?.text;
      if (typeof out !== 'string') {
        throw new RequestError(`response from ${this.url} has no ${this.o.mode === 'chat' ? 'choices[0].message.content' : 'choices[0].text'} (is factory.mode right?): ${snippet(text)}`, false, null, res.status);
      }
      const tokens = j?.usage?.completion_tokens;
      return { text: out, tokens: Number.isInteger(tokens) ? tokens : undefined };
    } finally {
      clearTimeout(timer);
      this.closer.signal.removeEventListener('abort', onClose);
    }
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.closer.signal;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closer.abort();
  }
}

/**
 * Delay before retry `attempt + 1`: base·2^attempt capped at `max`, scaled by a jitter factor in
 * [0.5, 1) from the uniform `u`; a server's Retry-After raises it (still capped at `max`).
 */
export function backoffDelay(attempt: number, base: number, max: number, u: number, retryAfterMs: number | null = null): number {
  const d = Math.min(max, base * 2 ** attempt) * (0.5 + 0.5 * u);
  return retryAfterMs !== null ? Math.min(max, Math.max(retryAfterMs, d)) : d;
}

function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text);
    const m = j?.error?.message ?? j?.message ?? j?.detail;
    if (typeof m === 'string') return snippet(m);
  } catch {
    /* not JSON */
  }
  return snippet(text);
}

function snippet(s: string, max = 300): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? t.slice(0, max) + '…' : t || '(empty body)';
}

/** Retry-After: seconds or an HTTP date → ms (null when absent or unparsable). */
function retryAfter(h: string | null): number | null {
  if (!h) return null;
  const s = Number(h);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const d = Date.parse(h);
  return Number.isFinite(d) ? Math.max(0, d - Date.now()) : null;
}
