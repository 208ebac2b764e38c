/**
 * Algorithm factory over any OpenAI-compatible HTTP endpoint (vLLM, llama.cpp server, Ollama,
 * `selfdev serve`), with Node's built-in fetch.
 *
 * One request per sample (sample i uses seed `opts.seed + i`, so candidates are reproducible on
 * servers that honour `seed`, and servers that only allow n = 1 work). Each request has its own
 * timeout (covering the body); 429, 408, 5xx, network errors and timeouts are retried with
 * exponential backoff and seeded jitter (a `Retry-After` header is honoured, capped); other 4xx fail
 * at once. At most `concurrency` requests are in flight.
 */
import { Rng } from '../nn/rng.ts';
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
}

/** An error that says whether retrying may help. */
class RequestError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

export class OpenAIFactory implements AlgorithmFactory {
  readonly name: string;
  private readonly o: Required<Omit<OpenAIFactoryOptions, 'extraBody'>> & { extraBody: Record<string, unknown> };
  private readonly url: string;
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
    };
    for (const k of ['timeoutMs', 'concurrency', 'defaultMaxTokens'] as const) {
      if (!(Number.isInteger(this.o[k]) && this.o[k] > 0)) throw new Error(`openai factory: ${k} must be a positive integer, got ${this.o[k]}`);
    }
    for (const k of ['retries', 'backoffMs', 'maxBackoffMs'] as const) {
      if (!(Number.isInteger(this.o[k]) && this.o[k] >= 0)) throw new Error(`openai factory: ${k} must be a non-negative integer, got ${this.o[k]}`);
    }
    this.url = base.href.replace(/\/+$/, '') + (mode === 'chat' ? '/chat/completions' : '/completions');
    this.name = `openai:${mode}:${opts.model}@${base.host}`;
  }

  async sample(prompt: FactoryPrompt, n: number, opts: SampleOptions): Promise<Candidate[]> {
    if (this.closed) throw new Error(`${this.name}: closed`);
    checkSampleArgs(this.name, n, opts);
    const out = new Array<Candidate>(n);
    let next = 0;
    const worker = async () => {
      while (next < n && !this.closed) {
        const i = next++;
        out[i] = await this.one(prompt, opts, i);
      }
    };
    await Promise.all(Array.from({ length: Math.min(n, this.o.concurrency) }, worker));
    for (let i = 0; i < n; i++) out[i] ??= { code: null, raw: '', error: 'factory closed before this sample ran', ms: 0 };
    return out;
  }

  private body(prompt: FactoryPrompt, opts: SampleOptions, seed: number): Record<string, unknown> {
    const b: Record<string, unknown> = {
      model: this.o.model,
      temperature: opts.temperature,
      top_p: opts.topP ?? 1,
      max_tokens: opts.maxTokens ?? this.o.defaultMaxTokens,
      n: 1,
      stream: false,
    };
    if (this.o.sendSeed) b.seed = seed;
    if (this.o.mode === 'chat') b.messages = prompt.messages;
    else {
      b.prompt = prompt.text;
      if (prompt.stop.length) b.stop = prompt.stop;
    }
    return { ...b, ...this.o.extraBody };
  }

  private async one(prompt: FactoryPrompt, opts: SampleOptions, i: number): Promise<Candidate> {
    const t0 = performance.now();
    const seed = opts.seed + i;
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
        if (!err.retryable || attempt === this.o.retries || this.closed) {
          const tries = attempt + 1;
          return { code: null, raw: '', error: `${lastErr}${tries > 1 ? ` (after ${tries} attempts)` : ''}`, ms: performance.now() - t0 };
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
        throw new RequestError(`HTTP ${res.status} from ${this.url}: ${errorMessage(text)}`, retryable, retryAfter(res.headers.get('retry-after')));
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
        throw new RequestError(`response from ${this.url} has no ${this.o.mode === 'chat' ? 'choices[0].message.content' : 'choices[0].text'}: ${snippet(text)}`, false);
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
