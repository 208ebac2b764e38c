/**
 * `selfdev serve`: an OpenAI-compatible HTTP server (node:http) over the builtin tiny-Llama engine.
 *
 *   GET  /v1/models             → {object:"list", data:[{id, object:"model", owned_by:"selfdev"}]}
 *   POST /v1/completions        → prompt (a string, strings, token ids or lists of token ids),
 *                                 max_tokens (16), temperature (1), top_p (1), stop (string |
 *                                 string[], ≤ 16), seed (0), n (1)
 *   POST /v1/chat/completions   → messages [{role: system|user|assistant, content: string}], same
 *                                 sampling fields (max_completion_tokens too)
 *   GET  /health                → {status:"ok"}
 *
 * Responses follow the OpenAI shapes (`choices[].text` / `choices[].message`, `finish_reason`
 * "stop" | "length", `usage`), plus vLLM's `stop_reason` per choice: the stop string that ended the
 * text, or null when the model emitted end-of-text or hit the length limit (the evaluator's
 * calculator loop uses it). Errors are `{error: {message, type, param, code}}` with 400 (bad JSON or
 * field), 404 (unknown route or model), 405, 413 (body > 1 MB), 500.
 *
 * Chat prompts: a model folder with a chat template (`chat_template.jinja`, `chat_template.json` or
 * tokenizer_config.json's `chat_template`) gets its messages rendered by that template with
 * `add_generation_prompt` (`nn/chat-template.ts`, `@huggingface/jinja`), tokenized without added
 * special tokens and with BOS put in front only when the template did not write it; the reply is the
 * text up to the model's end of turn (config.json's eos, the tokenizer's eos_token and
 * generation_config.json's eos_token_id all end a row). Without a template (our tiny models; documented
 * so clients can reproduce it): each message becomes `System: …`, `User: …` or `Assistant: …`,
 * messages are joined by "\n\n", and the prompt ends with "\n\nAssistant:". "\nUser:" and
 * "\nSystem:" are added to the stop strings; the leading space of the reply is removed.
 *
 * Any tokenizer.json loads (the model's own, through the Hugging Face `tokenizers` library when it is
 * not the engine's byte-level layout); the weights must be an architecture the engine runs.
 *
 * Request fields take the OpenAI API's ranges: `seed` any integer (vLLM's limit, a signed 64-bit
 * one; only its value mod 2^32 selects the stream), `n` 1–128 choices per prompt, `temperature`
 * 0–2, `frequency_penalty` / `presence_penalty` −2–2 (only 0 is implemented: other values are a
 * 400), `logprobs` / `echo` / `stream` / `best_of` / `logit_bias` / `suffix` / tools only at their
 * "off" values, informational fields (`user`, `metadata`, `store`, `service_tier`) accepted and
 * ignored. Token-id prompts are used as given (no bos added; left-truncated to fit like text).
 *
 * Sampling with an unseeded request uses seed 0 (deterministic). Row r of a request (choice j of
 * prompt i: r = i·n + j) samples from its own stream seeded by (seed, r), the builtin engine's
 * scheme (`generateIds`), so a one-prompt request with seed `seedForRow(s, r)` reproduces row r
 * of an in-process call seeded s. Greedy requests that arrive together with the same max_tokens
 * and stop strings are run as one engine batch (rows do not depend on batching); sampled requests
 * run alone so that their streams do not depend on other traffic.
 */
import { createServer as httpCreateServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { engineGenerate } from '../eval/backends.ts';
import type { EngineGeneration } from '../eval/backends.ts';
import type { Llama } from '../nn/model.ts';
import type { TextTokenizer } from '../nn/hf-tokenizer.ts';
import { encodeChat } from '../nn/chat-template.ts';
import type { ChatMessage, ChatTemplate } from '../nn/chat-template.ts';

export interface ServeOptions {
  /** Model id reported by /v1/models and required (when given) in requests. */
  name: string;
  /** Rows per engine batch (default 32). */
  batchSize?: number;
  /** Log one line per request to this function. */
  log?: (line: string) => void;
  /** Collect requests for this many ms before running a batch (default 2). */
  batchWindowMs?: number;
  /** The model's chat template (null / absent: the plain `User: …` format above). */
  chatTemplate?: ChatTemplate | null;
  /** More ids that end a reply like config.json's eos (the tokenizer's eos_token, generation_config.json's). */
  eosIds?: readonly number[];
  /** Called once by close() after the server stopped (e.g. to release the tokenizer). */
  onClose?: () => Promise<void>;
}

const MAX_BODY = 1 << 20;
const MAX_STOPS = 16;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = 'invalid_request_error',
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

interface Sampling {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
}

interface Job {
  /** Text prompts, or token ids (a rendered chat). */
  prompts: (string | number[])[];
  s: Sampling;
  resolve: (g: EngineGeneration[]) => void;
  reject: (e: unknown) => void;
}

/** The request's messages, checked: a non-empty array of {role: system|user|assistant, content: string}. */
export function chatMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, "'messages' must be a non-empty array", 'messages');
  return messages.map((m, i) => {
    if (typeof m !== 'object' || m === null) throw new HttpError(400, `messages[${i}] must be an object`, 'messages');
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (role !== 'system' && role !== 'user' && role !== 'assistant') throw new HttpError(400, `messages[${i}].role must be 'system', 'user' or 'assistant'`, 'messages');
    if (typeof content !== 'string') throw new HttpError(400, `messages[${i}].content must be a string`, 'messages');
    return { role, content };
  });
}

/** Chat messages → prompt text in the plain format of models without a chat template (see the module comment). */
export function chatPrompt(messages: unknown): string {
  const label = { system: 'System', user: 'User', assistant: 'Assistant' } as Record<string, string>;
  return `${chatMessages(messages).map((m) => `${label[m.role]}: ${m.content}`).join('\n\n')}\n\nAssistant:`;
}

export const CHAT_STOPS = ['\nUser:', '\nSystem:'];

export class CompletionServer {
  readonly server: Server;
  private readonly pending: Job[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  /** Engine batches run and rows generated (for tests and logs). */
  stats = { batches: 0, rows: 0, requests: 0 };

  constructor(
    private readonly model: Llama,
    private readonly tok: TextTokenizer,
    private readonly o: ServeOptions,
  ) {
    this.server = httpCreateServer((req, res) => {
      this.handle(req, res).catch((e) => this.sendError(res, e));
    });
  }

  /** Listen; resolves with the base URL (`http://host:port`). Port 0 = any free port. */
  listen(port: number, host = '127.0.0.1'): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const a = this.server.address() as AddressInfo;
        const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        resolve(`http://${h}:${a.port}`);
      });
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections?.();
    });
    const done = this.o.onClose;
    this.o.onClose = undefined;
    await done?.();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const t0 = performance.now();
    this.stats.requests++;
    if (path === '/v1/models' || path === '/health') {
      if (req.method !== 'GET') throw new HttpError(405, `${req.method} not allowed on ${path}`, null, 'invalid_request_error', 'method_not_allowed');
      if (path === '/health') return this.send(res, 200, { status: 'ok' });
      return this.send(res, 200, { object: 'list', data: [{ id: this.o.name, object: 'model', created: 0, owned_by: 'selfdev' }] });
    }
    if (path !== '/v1/completions' && path !== '/v1/chat/completions') throw new HttpError(404, `unknown route ${req.method} ${path}`, null, 'invalid_request_error', 'not_found');
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} not allowed on ${path} (use POST)`, null, 'invalid_request_error', 'method_not_allowed');
    const body = await readJson(req);
    const chat = path === '/v1/chat/completions';
    if (body.model !== undefined) {
      if (typeof body.model !== 'string') throw new HttpError(400, "'model' must be a string", 'model');
      if (body.model !== this.o.name) throw new HttpError(404, `The model '${body.model}' does not exist (this server serves '${this.o.name}')`, 'model', 'invalid_request_error', 'model_not_found');
    }
    checkUnsupported(body);
    const n = body.n === undefined || body.n === null ? 1 : body.n;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 128) throw new HttpError(400, `'n' must be an integer in [1, 128], got ${JSON.stringify(body.n)}`, 'n');
    const s = this.sampling(body, chat);
    let prompts: (string | number[])[];
    const template = chat ? (this.o.chatTemplate ?? null) : null;
    if (template) {
      let text: string;
      try {
        text = template.render(chatMessages(body.messages), { addGenerationPrompt: true });
      } catch (e) {
        if (e instanceof HttpError) throw e;
        throw new HttpError(400, (e as Error).message, 'messages');
      }
      prompts = [encodeChat(this.tok, text)];
    } else if (chat) {
      prompts = [chatPrompt(body.messages)];
      s.stop = [...s.stop, ...CHAT_STOPS];
    } else {
      prompts = this.promptList(body.prompt);
    }
    if (prompts.length * n > 1024) throw new HttpError(400, `at most 1024 completions per request (prompts × n), got ${prompts.length} × ${n}`, n > 1 ? 'n' : 'prompt');
    // choice j of prompt i is row i·n + j
    const gens = await this.enqueue(prompts.flatMap((p) => Array.from({ length: n }, () => p)), s);
    const created = Math.floor(Date.now() / 1000);
    const usage = {
      prompt_tokens: gens.reduce((a, g) => a + g.promptTokens, 0),
      completion_tokens: gens.reduce((a, g) => a + g.completionTokens, 0),
      total_tokens: 0,
    };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const finish = (g: EngineGeneration) => (g.finish === 'length' ? 'length' : 'stop');
    this.o.log?.(`${req.method} ${path} ${prompts.length} prompt(s) ${usage.completion_tokens} tok ${((performance.now() - t0) / 1000).toFixed(2)}s`);
    if (chat) {
      return this.send(res, 200, {
        id: `chatcmpl-${randomUUID()}`,
        object: 'chat.completion',
        created,
        model: this.o.name,
        choices: gens.map((g, index) => ({ index, message: { role: 'assistant', content: template ? g.text : g.text.replace(/^ /, '') }, logprobs: null, finish_reason: finish(g), stop_reason: g.stopString })),
        usage,
      });
    }
    return this.send(res, 200, {
      id: `cmpl-${randomUUID()}`,
      object: 'text_completion',
      created,
      model: this.o.name,
      choices: gens.map((g, index) => ({ index, text: g.text, logprobs: null, finish_reason: finish(g), stop_reason: g.stopString })),
      usage,
    });
  }

  private sampling(body: Record<string, unknown>, chat: boolean): Sampling {
    const maxPos = this.model.config.max_position_embeddings;
    const num = (k: string, def: number, lo: number, hi: number, int = false): number => {
      const v = body[k];
      if (v === undefined || v === null) return def;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (int && !Number.isInteger(v))) {
        throw new HttpError(400, `'${k}' must be ${int ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${JSON.stringify(v)}`, k);
      }
      return v;
    };
    const mtKey = chat && body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
    const maxTokens = num(mtKey, chat ? Math.min(256, maxPos - 1) : 16, 1, maxPos - 1, true);
    const temperature = num('temperature', 1, 0, 2);
    const topP = num('top_p', 1, Number.MIN_VALUE, 1);
    // any signed 64-bit integer (OpenAI: an integer; vLLM: int64); the stream uses its value mod 2^32
    // (2^63 itself is what JSON numbers read 9223372036854775807 as)
    const seed = num('seed', 0, -(2 ** 63), 2 ** 63, true);
    let stop: string[] = [];
    const st = body.stop;
    if (typeof st === 'string') stop = [st];
    else if (Array.isArray(st)) {
      if (!st.every((x) => typeof x === 'string')) throw new HttpError(400, "'stop' must be a string or an array of strings", 'stop');
      stop = st as string[];
    } else if (st !== undefined && st !== null) throw new HttpError(400, "'stop' must be a string or an array of strings", 'stop');
    if (stop.length > MAX_STOPS) throw new HttpError(400, `at most ${MAX_STOPS} stop strings, got ${stop.length}`, 'stop');
    stop = stop.filter((x) => x.length > 0);
    return { maxTokens, temperature, topP, seed: ((seed % 2 ** 32) + 2 ** 32) % 2 ** 32, stop };
  }

  /** `prompt` of /v1/completions: a string, a list of strings, a list of token ids, or a list of such lists. */
  private promptList(p: unknown): (string | number[])[] {
    const V = this.model.config.vocab_size;
    const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((t) => typeof t === 'number');
    const checkIds = (ids: number[], where: string) => {
      const bad = ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= V);
      if (bad >= 0) throw new HttpError(400, `'prompt'${where}[${bad}] must be a token id in [0, ${V - 1}], got ${JSON.stringify(ids[bad])}`, 'prompt');
      return ids;
    };
    let out: (string | number[])[];
    if (typeof p === 'string') out = [p];
    else if (isIds(p)) out = [checkIds(p, '')];
    else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) out = p as string[];
    else if (Array.isArray(p) && p.length > 0 && p.every(isIds)) out = (p as number[][]).map((ids, i) => checkIds(ids, `[${i}]`));
    else throw new HttpError(400, "'prompt' must be a string, a non-empty array of strings, a non-empty array of token ids or an array of such arrays", 'prompt');
    if (out.length > 1024) throw new HttpError(400, `at most 1024 prompts per request, got ${out.length}`, 'prompt');
    return out;
  }

  private enqueue(prompts: (string | number[])[], s: Sampling): Promise<EngineGeneration[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ prompts, s, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.timer || this.pending.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.drain();
    }, this.o.batchWindowMs ?? 2);
  }

  /** Run everything pending: greedy jobs grouped by (max_tokens, stop) as one batch, sampled ones alone. */
  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending.length) {
        const jobs = this.pending.splice(0);
        const groups = new Map<string, Job[]>();
        jobs.forEach((j, i) => {
          const key = j.s.temperature === 0 ? `g|${j.s.maxTokens}|${JSON.stringify(j.s.stop)}` : `s|${i}`;
          const g = groups.get(key);
          if (g) g.push(j);
          else groups.set(key, [j]);
        });
        for (const group of groups.values()) {
          const s = group[0].s;
          try {
            const all = group.flatMap((j) => j.prompts);
            const gens = await engineGenerate(this.model, this.tok, all, { maxTokens: s.maxTokens, stop: s.stop, temperature: s.temperature, topP: s.topP, seed: s.seed, batchSize: this.o.batchSize, eosIds: this.o.eosIds });
            this.stats.batches++;
            this.stats.rows += all.length;
            let off = 0;
            for (const j of group) {
              j.resolve(gens.slice(off, off + j.prompts.length));
              off += j.prompts.length;
            }
          } catch (e) {
            for (const j of group) j.reject(e);
          }
          // let requests that arrived meanwhile be parsed before the next batch
          await new Promise((r) => setImmediate(r));
        }
      }
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  private send(res: ServerResponse, status: number, obj: unknown): void {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private sendError(res: ServerResponse, e: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (e instanceof HttpError) {
      this.send(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: e.code } });
      return;
    }
    const msg = (e as Error)?.message ?? String(e);
    this.o.log?.(`error: ${msg}`);
    this.send(res, 500, { error: { message: msg, type: 'server_error', param: null, code: null } });
  }
}

/**
 * Request fields of the OpenAI API that selfdev serve does not implement: accepted at their "off"
 * value (what a client sends by default), a 400 naming the field otherwise. Penalties must lie in
 * the API's [-2, 2] and be 0 here.
 */
function checkUnsupported(body: Record<string, unknown>): void {
  const off = (v: unknown) => v === undefined || v === null || v === false || v === 0;
  for (const k of ['stream', 'echo', 'logprobs', 'top_logprobs', 'suffix', 'tools', 'functions', 'tool_choice', 'function_call', 'stream_options', 'prediction', 'audio', 'modalities', 'reasoning_effort'] as const) {
    const v = body[k];
    const fine = off(v) || (k === 'tool_choice' && v === 'none') || (k === 'function_call' && v === 'none') || (k === 'modalities' && Array.isArray(v) && v.every((m) => m === 'text')) || (k === 'suffix' && v === '');
    if (!fine) throw new HttpError(400, `'${k}' is not supported by selfdev serve (got ${JSON.stringify(v)})`, k);
  }
  if (!(off(body.best_of) || body.best_of === 1)) throw new HttpError(400, `'best_of' is not supported by selfdev serve (only 1; got ${JSON.stringify(body.best_of)})`, 'best_of');
  const lb = body.logit_bias;
  if (!(off(lb) || (typeof lb === 'object' && !Array.isArray(lb) && Object.keys(lb as object).length === 0))) throw new HttpError(400, "'logit_bias' is not supported by selfdev serve", 'logit_bias');
  for (const k of ['frequency_penalty', 'presence_penalty'] as const) {
    const v = body[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !(v >= -2 && v <= 2)) throw new HttpError(400, `'${k}' must be a number in [-2, 2], got ${JSON.stringify(v)}`, k);
    if (v !== 0) throw new HttpError(400, `'${k}' ${v} is not supported by selfdev serve (only 0)`, k);
  }
  const rf = body.response_format as { type?: unknown } | undefined | null;
  if (!(rf === undefined || rf === null || (typeof rf === 'object' && rf.type === 'text'))) throw new HttpError(400, "'response_format' is not supported by selfdev serve (only {\"type\": \"text\"})", 'response_format');
  if (body.user !== undefined && body.user !== null && typeof body.user !== 'string') throw new HttpError(400, "'user' must be a string", 'user');
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > MAX_BODY) {
        failed = true;
        reject(new HttpError(413, `request body larger than ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString('utf8');
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        reject(new HttpError(400, `request body is not valid JSON (${(e as Error).message})`));
        return;
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        reject(new HttpError(400, 'request body must be a JSON object'));
        return;
      }
      resolve(v as Record<string, unknown>);
    });
  });
}

/**
 * Load a model folder and start serving it: its own tokenizer (any tokenizer.json) and chat template
 * when it has one; the weights must be an architecture the engine runs.
 */
export async function serveModelDir(dir: string, opts: { port: number; host: string; name?: string; batchSize?: number; log?: (l: string) => void }): Promise<{ url: string; server: CompletionServer }> {
  const { existsSync, statSync } = await import('node:fs');
  const { basename, join, resolve } = await import('node:path');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`model folder not found: ${dir}`);
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`${dir}: not a model folder (no config.json)`);
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`${dir}: no tokenizer.json`);
  const { readLlamaFolder, checkTokenizerFile } = await import('../io/model-config.ts');
  // config.json and tokenizer.json checked against the tensors first (the shared reader)
  const spec = readLlamaFolder(dir, { tokenizer: false });
  checkTokenizerFile(join(dir, 'tokenizer.json'), { vocabSize: spec.vocab_size });
  const { ChatTemplate } = await import('../nn/chat-template.ts');
  const chatTemplate = ChatTemplate.fromDir(dir); // a broken template fails here, not at the first request
  const O = await import('../nn/ops.ts');
  const { loadModel } = await import('../nn/checkpoint.ts');
  const { closeTokenizer, endOfTextIds } = await import('../nn/load-tokenizer.ts');
  await O.initBackend();
  const { model, tokenizer } = loadModel(dir, { tokenizer: 'any' });
  if (!tokenizer) throw new Error(`${dir}: no tokenizer.json`);
  const eosIds = endOfTextIds(dir, tokenizer);
  const server = new CompletionServer(model, tokenizer, { name: opts.name ?? basename(resolve(dir)), batchSize: opts.batchSize, log: opts.log, chatTemplate, eosIds, onClose: () => closeTokenizer(tokenizer) });
  const url = await server.listen(opts.port, opts.host);
  return { url, server };
}

