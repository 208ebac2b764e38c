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
 *   POST /selfdev/load          → {"model": "<folder>", "name"?: "<id>"}: load another checkpoint folder
 *                                 and serve it from then on (see "Reloading" below)
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
 *
 * Reloading (`POST /selfdev/load`, body `{"model": DIR, "name": ID}`; name defaults to the folder's
 * name): the folder gets the startup checks and is loaded in full (weights, tokenizer, chat template)
 * while the old model keeps answering; then it is swapped in between requests. A request is answered
 * by the model that was current when it arrived (in-flight ones finish on the old weights, whose
 * memory is freed after the last of them), so no request sees a half-loaded model. Answer 200
 * `{"object": "model", "id", "model_dir", "previous", "load_ms"}`; a bad folder is a 400 (code
 * `invalid_model_folder`) naming the problem, and the old model keeps serving. Loads run one at a
 * time. The endpoint exists only when the server listens on loopback, or with `--allow-load` (it
 * reads any folder the server's user can read); otherwise it answers 403.
 */
import { createServer as httpCreateServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { engineGenerate } from '../eval/backends.ts';
import type { EngineGeneration } from '../eval/backends.ts';
import type { EngineModel } from '../nn/generate.ts';
import type { TextTokenizer } from '../nn/hf-tokenizer.ts';
import { encodeChat } from '../nn/chat-template.ts';
import type { ChatMessage, ChatTemplate } from '../nn/chat-template.ts';
import { ModelFolderError, isLoopbackHost, loadServedModel, type ServedModel } from './load.ts';

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
  /** Called once by close() after the server stopped, or when a reload replaced the first model (e.g. to release the tokenizer). */
  onClose?: () => Promise<void>;
  /** How POST /selfdev/load loads a folder (absent: the endpoint answers 404). */
  loader?: (dir: string, name?: string) => Promise<ServedModel>;
  /** Why POST /selfdev/load is refused (403) although a loader is set, e.g. a non-loopback bind. */
  loadRefused?: string;
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

/** The model being served, with the requests that still use it (freed once retired and unused). */
interface Current extends ServedModel {
  id: number;
  refs: number;
  retired: boolean;
}

interface Job {
  /** Text prompts, or token ids (a rendered chat). */
  prompts: (string | number[])[];
  s: Sampling;
  m: Current;
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
  /** Engine batches run and rows generated (for tests and logs); loads = models swapped in by POST /selfdev/load. */
  stats = { batches: 0, rows: 0, requests: 0, loads: 0 };
  private cur: Current;
  private loading: Promise<unknown> = Promise.resolve();

  constructor(
    model: EngineModel,
    tok: TextTokenizer,
    private readonly o: ServeOptions,
  ) {
    this.cur = { model, tok, name: o.name, dir: null, chatTemplate: o.chatTemplate ?? null, eosIds: o.eosIds ?? [], release: async () => undefined, id: 0, refs: 0, retired: false };
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
    const cur = this.cur;
    cur.retired = true;
    await this.releaseIfUnused(cur);
    await done?.();
  }

  /** The served model's id (changes with POST /selfdev/load). */
  get modelName(): string {
    return this.cur.name;
  }

  private async releaseIfUnused(m: Current): Promise<void> {
    if (!m.retired || m.refs > 0) return;
    m.refs = -1; // released once
    await m.release();
  }

  /** POST /selfdev/load: check and load the folder while the old model serves, then swap (one load at a time). */
  private async load(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (!this.o.loader) throw new HttpError(404, 'this server cannot load models (no loader)', null, 'invalid_request_error', 'not_found');
    if (this.o.loadRefused) throw new HttpError(403, this.o.loadRefused, null, 'permission_error', 'load_disabled');
    for (const k of Object.keys(body)) if (k !== 'model' && k !== 'name') throw new HttpError(400, `unknown field '${k}' (POST /selfdev/load takes {"model": "<folder>", "name": "<id>"})`, k);
    if (typeof body.model !== 'string' || !body.model.trim()) throw new HttpError(400, "'model' must be the path of a model folder (a non-empty string)", 'model');
    if (body.name !== undefined && (typeof body.name !== 'string' || !body.name.trim())) throw new HttpError(400, "'name' must be a non-empty string", 'name');
    const dir = body.model;
    const name = body.name as string | undefined;
    const run = this.loading.then(async () => {
      const t0 = performance.now();
      let next: ServedModel;
      try {
        next = await this.o.loader!(dir, name);
      } catch (e) {
        if (e instanceof ModelFolderError) throw new HttpError(400, `cannot load '${dir}': ${e.message} (still serving '${this.cur.name}')`, 'model', 'invalid_request_error', 'invalid_model_folder');
        throw e;
      }
      const old = this.cur;
      // the first model's resources belong to onClose; a loaded one's to its own release
      const release = old.id === 0 ? async () => { const f = this.o.onClose; this.o.onClose = undefined; await f?.(); } : old.release;
      old.release = release;
      this.cur = { ...next, id: old.id + 1, refs: 0, retired: false };
      this.stats.loads++;
      old.retired = true;
      void this.releaseIfUnused(old).catch((e: unknown) => this.o.log?.(`error freeing '${old.name}': ${(e as Error).message}`));
      const loadMs = performance.now() - t0;
      this.o.log?.(`loaded ${next.dir} as '${next.name}' in ${(loadMs / 1000).toFixed(2)}s`);
      return { object: 'model', id: next.name, model_dir: next.dir, previous: old.name, load_ms: Math.round(loadMs) };
    });
    this.loading = run.catch(() => undefined);
    return run;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const t0 = performance.now();
    this.stats.requests++;
    if (path === '/selfdev/load') {
      if (req.method !== 'POST') throw new HttpError(405, `${req.method} not allowed on ${path} (use POST)`, null, 'invalid_request_error', 'method_not_allowed');
      return this.send(res, 200, await this.load(await readJson(req)));
    }
    // the model current when the request arrived answers it (a reload meanwhile does not free it)
    const m = this.cur;
    m.refs++;
    try {
      await this.answer(req, res, path, m, t0);
    } finally {
      m.refs--;
      if (m.retired) await this.releaseIfUnused(m);
    }
  }

  private async answer(req: IncomingMessage, res: ServerResponse, path: string, m: Current, t0: number): Promise<void> {
    if (path === '/v1/models' || path === '/health') {
      if (req.method !== 'GET') throw new HttpError(405, `${req.method} not allowed on ${path}`, null, 'invalid_request_error', 'method_not_allowed');
      if (path === '/health') return this.send(res, 200, { status: 'ok' });
      return this.send(res, 200, { object: 'list', data: [{ id: m.name, object: 'model', created: 0, owned_by: 'selfdev' }] });
    }
    if (path !== '/v1/completions' && path !== '/v1/chat/completions') throw new HttpError(404, `unknown route ${req.method} ${path}`, null, 'invalid_request_error', 'not_found');
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} not allowed on ${path} (use POST)`, null, 'invalid_request_error', 'method_not_allowed');
    const body = await readJson(req);
    const chat = path === '/v1/chat/completions';
    if (body.model !== undefined) {
      if (typeof body.model !== 'string') throw new HttpError(400, "'model' must be a string", 'model');
      if (body.model !== m.name) throw new HttpError(404, `The model '${body.model}' does not exist (this server serves '${m.name}')`, 'model', 'invalid_request_error', 'model_not_found');
    }
    checkUnsupported(body);
    const n = body.n === undefined || body.n === null ? 1 : body.n;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 128) throw new HttpError(400, `'n' must be an integer in [1, 128], got ${JSON.stringify(body.n)}`, 'n');
    const s = this.sampling(body, chat, m.model);
    let prompts: (string | number[])[];
    const template = chat ? m.chatTemplate : null;
    if (template) {
      let text: string;
      try {
        text = template.render(chatMessages(body.messages), { addGenerationPrompt: true });
      } catch (e) {
        if (e instanceof HttpError) throw e;
        throw new HttpError(400, (e as Error).message, 'messages');
      }
      prompts = [encodeChat(m.tok, text)];
    } else if (chat) {
      prompts = [chatPrompt(body.messages)];
      s.stop = [...s.stop, ...CHAT_STOPS];
    } else {
      prompts = this.promptList(body.prompt, m.model);
    }
    if (prompts.length * n > 1024) throw new HttpError(400, `at most 1024 completions per request (prompts × n), got ${prompts.length} × ${n}`, n > 1 ? 'n' : 'prompt');
    // choice j of prompt i is row i·n + j
    const gens = await this.enqueue(prompts.flatMap((p) => Array.from({ length: n }, () => p)), s, m);
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
        model: m.name,
        choices: gens.map((g, index) => ({ index, message: { role: 'assistant', content: template ? g.text : g.text.replace(/^ /, '') }, logprobs: null, finish_reason: finish(g), stop_reason: g.stopString })),
        usage,
      });
    }
    return this.send(res, 200, {
      id: `cmpl-${randomUUID()}`,
      object: 'text_completion',
      created,
      model: m.name,
      choices: gens.map((g, index) => ({ index, text: g.text, logprobs: null, finish_reason: finish(g), stop_reason: g.stopString })),
      usage,
    });
  }

  private sampling(body: Record<string, unknown>, chat: boolean, model: EngineModel): Sampling {
    const maxPos = model.config.max_position_embeddings;
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
  private promptList(p: unknown, model: EngineModel): (string | number[])[] {
    const V = model.config.vocab_size;
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

  private enqueue(prompts: (string | number[])[], s: Sampling, m: Current): Promise<EngineGeneration[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ prompts, s, m, resolve, reject });
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
          const key = j.s.temperature === 0 ? `g|${j.m.id}|${j.s.maxTokens}|${JSON.stringify(j.s.stop)}` : `s|${i}`;
          const g = groups.get(key);
          if (g) g.push(j);
          else groups.set(key, [j]);
        });
        for (const group of groups.values()) {
          const { s, m } = group[0];
          try {
            const all = group.flatMap((j) => j.prompts);
            const gens = await engineGenerate(m.model, m.tok, all, { maxTokens: s.maxTokens, stop: s.stop, temperature: s.temperature, topP: s.topP, seed: s.seed, batchSize: this.o.batchSize, eosIds: m.eosIds });
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
 * when it has one; the weights must be an architecture the engine runs. POST /selfdev/load is on when
 * `host` is a loopback interface, or with `allowLoad` (`--allow-load`).
 */
export async function serveModelDir(dir: string, opts: { port: number; host: string; name?: string; batchSize?: number; log?: (l: string) => void; allowLoad?: boolean }): Promise<{ url: string; server: CompletionServer }> {
  const t0 = performance.now();
  const first = await loadServedModel(dir, opts.name);
  const gib = 'weightBytes' in first.model ? `, ${(first.model.weightBytes() / 2 ** 30).toFixed(2)} GiB of weights` : '';
  opts.log?.(`loaded ${first.dir} as '${first.name}' in ${((performance.now() - t0) / 1000).toFixed(2)}s${gib}`);
  const loadRefused = opts.allowLoad || isLoopbackHost(opts.host) ? undefined : `POST /selfdev/load is disabled: this server listens on ${opts.host}, not loopback (start selfdev serve with --allow-load to enable it)`;
  const server = new CompletionServer(first.model, first.tok, { name: first.name, batchSize: opts.batchSize, log: opts.log, chatTemplate: first.chatTemplate, eosIds: first.eosIds, onClose: first.release, loader: loadServedModel, loadRefused });
  const url = await server.listen(opts.port, opts.host);
  return { url, server };
}
