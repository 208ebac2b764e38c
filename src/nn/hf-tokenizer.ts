/**
 * A model's own tokenizer files (any `tokenizer.json`: SentencePiece-style BPE with byte fallback as
 * Llama-2 / Mistral write it, byte-level BPE as Llama-3 / Qwen write it, Unigram, WordPiece …) run by
 * the official Hugging Face `tokenizers` library (its Rust core, prebuilt), with the special tokens
 * and BOS / EOS rules of `tokenizer_config.json`.
 *
 * Ids are the library's. What this module adds:
 * - BOS / EOS: when tokenizer_config.json sets `add_bos_token` or `add_eos_token` (booleans), a prompt
 *   is `[bos] + text + [eos]` by those flags (what transformers' Llama/Gemma fast tokenizers rebuild
 *   their post-processor to); otherwise the tokenizer.json's post-processor decides (probed once at
 *   load: the ids it puts before and after a text). `bos_token`, `eos_token`, `pad_token`,
 *   `unk_token` are read from tokenizer_config.json (a string or `{content}`), else
 *   special_tokens_map.json, and must be tokens of the vocabulary.
 * - Synchronous calls. The library's `encode` / `decode` return promises, while the engine encodes
 *   inside synchronous loops (the calculator's forced tokens, training data). Encoding therefore runs
 *   in a worker thread that owns a second instance of the library, and the caller waits on it
 *   (`Atomics.wait` + `receiveMessageOnPort`, ~0.2 ms a call measured on this machine); decoding is done
 *   in the calling thread with the library's own decoder object (`getDecoder().decode(tokens)`, which is
 *   synchronous) over the id → token table, exactly as the library's `decode` composes them.
 * - Continuations (`encodeContinuation`, `decodeContinuation`): text that follows other text in a
 *   sequence (a calculator value, a generation) is encoded / decoded after an anchor ("\n") that is
 *   then removed, so a SentencePiece normalizer does not prepend "▁" and its decoder does not strip a
 *   leading space.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';

/** What the engine, the evaluator and the server need from a tokenizer (the engine's own one or a model's files). */
export interface TextTokenizer {
  /** Id of the BOS token (null: the tokenizer has none). */
  readonly bosId: number | null;
  /** Id of the EOS token (null: none). */
  readonly eosId: number | null;
  /** Number of ids the tokenizer can produce (largest id + 1). */
  readonly vocabSize: number;
  /** Ids that a prompt starts with before its text (BOS when the files say so; possibly none). */
  readonly promptPrefix: readonly number[];
  /** Ids of a text fed to the model as a whole sequence, special tokens added as the files say. */
  encodePrompt(text: string): number[];
  /** Ids of `text` at the start of a sequence, no special tokens added (special-token strings in it are still their ids). */
  encode(text: string): number[];
  /** Ids of `text` appended to a sequence that already holds other text (no leading-space marker a SentencePiece normalizer would prepend). */
  encodeContinuation(text: string): number[];
  /** Text of `ids`; special tokens are dropped unless `keepSpecial`. */
  decode(ids: readonly number[], opts?: { keepSpecial?: boolean }): string;
  /** Text of `ids` that follow other text (a generation): a leading space stays (a SentencePiece decoder strips it at the start of a sequence). */
  decodeContinuation(ids: readonly number[], opts?: { keepSpecial?: boolean }): string;
}

/** The native library's surface used here (a subset of `tokenizers`' Tokenizer). */
interface NativeTokenizer {
  getVocabSize(withAddedTokens?: boolean): number;
  idToToken(id: number): string | null;
  tokenToId(token: string): number | null;
  getDecoder(): { decode(tokens: string[]): string } | null;
}

const require_ = createRequire(import.meta.url);

/** Worker thread body (CommonJS, evaluated): owns one `tokenizers` instance, answers encode requests. */
const WORKER = `
const { workerData } = require('node:worker_threads');
const { port, flag, mod, file } = workerData;
let tok = null, loadError = null;
try { tok = require(mod).Tokenizer.fromFile(file); } catch (e) { loadError = String((e && e.message) || e); }
port.on('message', async (m) => {
  let reply;
  try {
    if (loadError) throw new Error(loadError);
    const e = await tok.encode(m.text, null, { addSpecialTokens: m.special });
    reply = { ids: e.getIds() };
  } catch (e) { reply = { error: String((e && e.message) || e) }; }
  port.postMessage(reply);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
});
`;

/** A synchronous call into a worker thread that runs the library's async encode. */
class SyncEncoder {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private closed = false;

  constructor(private readonly file: string) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER, { eval: true, workerData: { port: port2, flag: this.flag, mod: require_.resolve('tokenizers'), file }, transferList: [port2] });
    // neither keeps the process alive: a loaded tokenizer that is never closed does not hang the exit
    this.worker.unref();
    this.port.unref();
  }

  encode(text: string, special: boolean): number[] {
    if (this.closed) throw new Error(`tokenizer ${this.file}: used after close()`);
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage({ text, special });
    if (Atomics.wait(this.flag, 0, 0, 120_000) === 'timed-out') throw new Error(`tokenizer ${this.file}: the encoding thread did not answer in 120 s`);
    const got = receiveMessageOnPort(this.port)?.message as { ids?: number[]; error?: string } | undefined;
    if (!got) throw new Error(`tokenizer ${this.file}: the encoding thread sent no answer`);
    if (got.error !== undefined) throw new Error(`tokenizer ${this.file}: ${got.error}`);
    return got.ids!;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.port.close();
    return this.worker.terminate().then(() => undefined);
  }
}

/** A JSON object file, or null when it does not exist (an error names the file when it is not a JSON object). */
export function readJson(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error(`${path}: must be a JSON object`);
  return j as Record<string, unknown>;
}

/** A special token's text from a tokenizer_config.json / special_tokens_map.json value (a string or `{content}`). */
export function specialTokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export class HfTokenizer implements TextTokenizer {
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  /** bos / eos / pad / unk token texts (null when the files name none): what a chat template sees. */
  readonly specialTokens: { bos_token: string | null; eos_token: string | null; pad_token: string | null; unk_token: string | null };
  readonly vocabSize: number;
  readonly promptPrefix: number[];
  /** Ids a prompt ends with after its text (EOS when `add_eos_token`). */
  readonly promptSuffix: number[];
  /** Ids of special added tokens (dropped by decode unless keepSpecial). */
  readonly specialIds: ReadonlySet<number>;
  /** tokenizer_config.json (empty when the folder has none). */
  readonly config: Readonly<Record<string, unknown>>;
  private readonly native: NativeTokenizer;
  private readonly tokenCache: Array<string | null | undefined> = [];
  private readonly decoder: { decode(tokens: string[]): string } | null;
  private readonly enc: SyncEncoder;
  /** ids of the continuation anchor ("\n") at the start of a sequence, for encodeContinuation. */
  private readonly anchorIds: number[];

  private constructor(readonly dir: string) {
    const path = join(dir, 'tokenizer.json');
    if (!existsSync(path)) throw new Error(`${dir}: no tokenizer.json`);
    const config = readJson(join(dir, 'tokenizer_config.json')) ?? {};
    const map = readJson(join(dir, 'special_tokens_map.json')) ?? {};
    // what tokenizer_config.json says is checked before anything heavy is loaded
    const flag = (k: string): boolean | undefined => {
      const v = config[k];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'boolean') throw new Error(`${dir}: tokenizer_config.json ${k} must be true or false, got ${JSON.stringify(v)}`);
      return v;
    };
    const addBos = flag('add_bos_token');
    const addEos = flag('add_eos_token');
    const named = (key: string): string | null => {
      const raw = key in config ? config[key] : map[key];
      if (raw === undefined || raw === null) return null;
      const text = specialTokenText(raw);
      if (text === null) throw new Error(`${dir}: tokenizer_config.json ${key} must be a string or {content}, got ${JSON.stringify(raw).slice(0, 80)}`);
      return text;
    };
    const texts = { bos_token: named('bos_token'), eos_token: named('eos_token'), pad_token: named('pad_token'), unk_token: named('unk_token') };
    if (addBos && texts.bos_token === null) throw new Error(`${dir}: tokenizer_config.json add_bos_token is true but no bos_token is named`);
    if (addEos && texts.eos_token === null) throw new Error(`${dir}: tokenizer_config.json add_eos_token is true but no eos_token is named`);
    this.config = config;
    this.specialTokens = texts;
    // the encoding thread loads its own copy while this thread loads and checks tokenizer.json
    this.enc = new SyncEncoder(path);
    try {
      const json = readJson(path)!;
      const { Tokenizer } = require_('tokenizers') as { Tokenizer: { fromFile(f: string): NativeTokenizer } };
      try {
        this.native = Tokenizer.fromFile(path);
      } catch (e) {
        throw new Error(`${path}: the tokenizers library cannot load it (${(e as Error).message})`);
      }
      const special = new Set<number>();
      let maxAdded = -1;
      for (const t of (Array.isArray(json.added_tokens) ? json.added_tokens : []) as Array<{ id?: unknown; special?: unknown }>) {
        if (typeof t.id !== 'number') continue;
        if (t.special === true) special.add(t.id);
        maxAdded = Math.max(maxAdded, t.id);
      }
      this.specialIds = special;
      // ids are dense in every real vocabulary; added tokens may sit above the model's vocabulary
      this.vocabSize = Math.max(this.native.getVocabSize(true), maxAdded + 1);
      const idOf = (key: keyof typeof texts): number | null => {
        const text = texts[key];
        if (text === null) return null;
        const id = this.native.tokenToId(text);
        if (id === null || id === undefined) throw new Error(`${dir}: tokenizer_config.json ${key} ${JSON.stringify(text)} is not a token of tokenizer.json`);
        return id;
      };
      this.bosId = idOf('bos_token');
      this.eosId = idOf('eos_token');
      this.padId = idOf('pad_token');
      this.unkId = idOf('unk_token');
      this.decoder = this.native.getDecoder();
      if (addBos === undefined && addEos === undefined) {
        // no flags: the post-processor of tokenizer.json decides; probe what it adds around a text
        const plain = this.enc.encode('a', false);
        const full = this.enc.encode('a', true);
        const at = indexOfRun(full, plain);
        if (at < 0) throw new Error(`${path}: its post-processor changes a text's own ids (cannot tell what it adds around a prompt)`);
        this.promptPrefix = full.slice(0, at);
        this.promptSuffix = full.slice(at + plain.length);
      } else {
        this.promptPrefix = addBos ? [this.bosId!] : [];
        this.promptSuffix = addEos ? [this.eosId!] : [];
      }
      this.anchorIds = this.enc.encode('\n', false);
    } catch (e) {
      void this.enc.close();
      throw e;
    }
  }

  /** Load `dir`/tokenizer.json (+ tokenizer_config.json, special_tokens_map.json when present). */
  static load(dir: string): HfTokenizer {
    return new HfTokenizer(dir);
  }

  encode(text: string): number[] {
    return this.enc.encode(text, false);
  }

  encodePrompt(text: string): number[] {
    return [...this.promptPrefix, ...this.encode(text), ...this.promptSuffix];
  }

  /**
   * Ids of `text` as a continuation: encoded after an anchor ("\n", which no vocabulary merges with
   * the text after it) whose own ids are then removed; checked to decode back to `text` as a
   * continuation, else the
   * plain `encode` (SentencePiece normalizers that prepend "▁" to a sequence would otherwise put a
   * space before every appended piece).
   */
  encodeContinuation(text: string): number[] {
    if (text === '') return [];
    const ids = this.enc.encode(`\n${text}`, false);
    const a = this.anchorIds;
    if (ids.length > a.length && a.every((x, i) => ids[i] === x)) {
      const rest = ids.slice(a.length);
      if (this.decodeContinuation(rest, { keepSpecial: true }) === text) return rest;
    }
    return this.encode(text);
  }

  /** Text of `ids` decoded after the anchor ("\n") whose own text is then removed (a leading "▁" stays a space). */
  decodeContinuation(ids: readonly number[], opts: { keepSpecial?: boolean } = {}): string {
    const head = this.decode(this.anchorIds, { keepSpecial: true });
    const full = this.decode([...this.anchorIds, ...ids], opts);
    return full.startsWith(head) ? full.slice(head.length) : this.decode(ids, opts);
  }

  decode(ids: readonly number[], opts: { keepSpecial?: boolean } = {}): string {
    const toks: string[] = [];
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id < 0) throw new Error(`tokenizer ${this.dir}: ${id} is not a token id`);
      // an id without a token (a model's embedding rows beyond the vocabulary) is skipped, as the library's decode does
      const t = this.token(id);
      if (t === undefined || (!opts.keepSpecial && this.specialIds.has(id))) continue;
      toks.push(t);
    }
    return this.decoder ? this.decoder.decode(toks) : toks.join(' ');
  }

  /** The token text of `id` (undefined when not in the vocabulary). */
  token(id: number): string | undefined {
    if (id >= this.vocabSize) return this.native.idToToken(id) ?? undefined;
    let t = this.tokenCache[id];
    if (t === undefined) {
      t = this.native.idToToken(id);
      this.tokenCache[id] = t;
    }
    return t ?? undefined;
  }

  /** Stop the encoding thread (the tokenizer is unusable afterwards). */
  close(): Promise<void> {
    return this.enc.close();
  }
}

function indexOfRun(hay: readonly number[], needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
