/**
 * Byte-level BPE tokenizer, GPT-2 style, saved as a real Hugging Face `tokenizer.json`.
 *
 * Ids: 0 `<pad>`, 1 `<s>` (bos), 2 `</s>` (eos) are special added tokens; 3..258 are the 256 bytes
 * in byte order, each token's string being GPT-2 `bytes_to_unicode` of that byte; 259+ are merged
 * tokens from `trainBpe` in merge order. Pre-tokenisation is the GPT-2 regex; merges never cross
 * pre-token boundaries. Special token strings appearing in text are encoded as their ids (as HF does).
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BYTE_CHARS } from '../io/model-config.ts';

export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const BYTE_OFFSET = 3;
const SPECIALS = ['<pad>', '<s>', '</s>'];
/**
 * tokenizer.json's post-processor: `<s>` before every sequence, as Llama's own tokenizer.json writes
 * it (a pair gets `<s>` before each part). Hugging Face `tokenizers` then encodes a text, with special
 * tokens on (its default), to exactly `Tokenizer.encodePrompt`.
 */
const BOS_POST_PROCESSOR = {
  type: 'TemplateProcessing',
  single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
  pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
  special_tokens: { '<s>': { id: '<s>', ids: [BOS_ID], tokens: ['<s>'] } },
};
const FIRST_MERGE_ID = BYTE_OFFSET + 256;

const PRETOKEN_RE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const BYTE_TO_CHAR = BYTE_CHARS;
const CHAR_TO_BYTE = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, b]));

export function pretokenize(text: string): string[] {
  return text.match(PRETOKEN_RE) ?? [];
}

const utf8 = new TextEncoder();

export class Tokenizer {
  readonly padId = PAD_ID;
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  /** Every prompt starts with `<s>` (see encodePrompt). */
  readonly promptPrefix: readonly number[] = [BOS_ID];
  /** Token strings by id (byte-level unicode form). */
  readonly tokens: string[];
  /** Merges in rank order, as pairs of token ids. */
  readonly merges: Array<[number, number]>;
  private readonly rank = new Map<number, number>(); // pairKey → rank
  private readonly cache = new Map<string, number[]>();
  private readonly tokenToId: Map<string, number>;

  constructor(merges: Array<[number, number]> = []) {
    this.merges = merges.map(([a, b]) => [a, b]);
    this.tokens = [...SPECIALS, ...BYTE_TO_CHAR];
    merges.forEach(([a, b], r) => {
      if (!(a < FIRST_MERGE_ID + r && b < FIRST_MERGE_ID + r)) throw new Error(`tokenizer: merge ${r} refers to a later token`);
      this.rank.set(pairKey(a, b), r);
      this.tokens.push(this.tokens[a] + this.tokens[b]);
    });
    this.tokenToId = new Map(this.tokens.map((t, i) => [t, i]));
    if (this.tokenToId.size !== this.tokens.length) throw new Error('tokenizer: duplicate token strings in merges');
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  /**
   * What the engine feeds the model for a text: bos + encode(text). Generation, evaluation, training
   * and DPO all start every sequence with `<s>`, and the saved files say so (tokenizer.json's
   * post-processor, tokenizer_config.json's add_bos_token, GGUF add_bos_token), so a tool that
   * tokenizes by the files gets exactly these ids.
   */
  encodePrompt(text: string): number[] {
    return [this.bosId, ...this.encode(text)];
  }

  /** Ids of `text` appended after other text: the same as encode (byte-level: no prefix-space marker). */
  encodeContinuation(text: string): number[] {
    return this.encode(text);
  }

  /** Text of ids that follow other text: the same as decode (byte-level: no space is stripped). */
  decodeContinuation(ids: readonly number[], opts: { keepSpecial?: boolean } = {}): string {
    return this.decode(ids, opts);
  }

  /** Token ids of `text` (no bos/eos added). */
  encode(text: string): number[] {
    const out: number[] = [];
    // split on special token strings first
    let rest = text;
    while (rest.length > 0) {
      let best = -1;
      let bestId = -1;
      for (let i = 0; i < SPECIALS.length; i++) {
        const p = rest.indexOf(SPECIALS[i]);
        if (p >= 0 && (best < 0 || p < best)) {
          best = p;
          bestId = i;
        }
      }
      const chunk = best < 0 ? rest : rest.slice(0, best);
      for (const pt of pretokenize(chunk)) for (const id of this.encodeWord(pt)) out.push(id);
      if (best < 0) break;
      out.push(bestId);
      rest = rest.slice(best + SPECIALS[bestId].length);
    }
    return out;
  }

  private encodeWord(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    let ids = Array.from(utf8.encode(word), (b) => b + BYTE_OFFSET);
    if (this.merges.length > 0) {
      while (ids.length > 1) {
        let bestRank = Infinity;
        let bestAt = -1;
        for (let i = 0; i + 1 < ids.length; i++) {
          const r = this.rank.get(pairKey(ids[i], ids[i + 1]));
          if (r !== undefined && r < bestRank) {
            bestRank = r;
            bestAt = i;
          }
        }
        if (bestAt < 0) break;
        const [a, b] = this.merges[bestRank];
        const next: number[] = [];
        for (let i = 0; i < ids.length; i++) {
          if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
            next.push(FIRST_MERGE_ID + bestRank);
            i++;
          } else next.push(ids[i]);
        }
        ids = next;
      }
    }
    if (this.cache.size < 100_000) this.cache.set(word, ids);
    return ids;
  }

  /** Text of `ids`. Special tokens are dropped unless `keepSpecial`. Invalid UTF-8 becomes U+FFFD. */
  decode(ids: readonly number[], opts: { keepSpecial?: boolean } = {}): string {
    const bytes: number[] = [];
    let out = '';
    const flush = () => {
      if (bytes.length) out += Buffer.from(bytes).toString('utf8');
      bytes.length = 0;
    };
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.tokens.length) throw new Error(`tokenizer: id ${id} out of range [0, ${this.tokens.length})`);
      if (id < BYTE_OFFSET) {
        if (opts.keepSpecial) {
          flush();
          out += SPECIALS[id];
        }
        continue;
      }
      for (const ch of this.tokens[id]) bytes.push(CHAR_TO_BYTE.get(ch)!);
    }
    flush();
    return out;
  }

  /** Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `dir` (created). */
  save(dir: string, opts: { modelMaxLength?: number } = {}): void {
    mkdirSync(dir, { recursive: true });
    const vocab: Record<string, number> = {};
    this.tokens.forEach((t, i) => (vocab[t] = i));
    const tokJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: SPECIALS.map((content, id) => ({
        id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
      })),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: BOS_POST_PROCESSOR,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: false, byte_fallback: false, ignore_merges: false,
        vocab,
        merges: this.merges.map(([a, b]) => [this.tokens[a], this.tokens[b]]),
      },
    };
    const addedDecoder: Record<string, unknown> = {};
    SPECIALS.forEach((content, id) => {
      addedDecoder[String(id)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
    });
    const config = {
      add_bos_token: true,
      add_eos_token: false,
      add_prefix_space: false,
      added_tokens_decoder: addedDecoder,
      bos_token: '<s>',
      clean_up_tokenization_spaces: false,
      eos_token: '</s>',
      model_max_length: opts.modelMaxLength ?? 1024,
      pad_token: '<pad>',
      tokenizer_class: 'PreTrainedTokenizerFast',
    };
    const special = { bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>' };
    writeAtomic(join(dir, 'tokenizer.json'), JSON.stringify(tokJson, null, 2) + '\n');
    writeAtomic(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
    writeAtomic(join(dir, 'special_tokens_map.json'), JSON.stringify(special, null, 2) + '\n');
  }

  /** Load a tokenizer.json written by `save` (merges as pairs or "a b" strings). */
  static load(dir: string): Tokenizer {
    const path = join(dir, 'tokenizer.json');
    let j: any;
    try {
      j = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`tokenizer: cannot read ${path}: ${(e as Error).message}`);
    }
    if (j?.model?.type !== 'BPE') throw new Error(`tokenizer: ${path}: model.type must be "BPE"`);
    // the engine always prepends <s>: a post-processor that says otherwise would make other tools feed
    // the model different ids (null: files written before the post-processor was saved; same engine)
    if (j.post_processor != null && JSON.stringify(j.post_processor) !== JSON.stringify(BOS_POST_PROCESSOR)) {
      throw new Error(`tokenizer: ${path}: post_processor must be null or TemplateProcessing "<s> $A" (this engine always prepends <s>, id ${BOS_ID}), got ${JSON.stringify(j.post_processor).slice(0, 200)}`);
    }
    const vocab: Record<string, number> = j.model.vocab;
    const base = new Tokenizer();
    for (let i = 0; i < FIRST_MERGE_ID; i++) {
      const tok = base.tokens[i];
      const want = i < BYTE_OFFSET ? (j.added_tokens as any[])?.find((t) => t.id === i)?.content : tok;
      if (i < BYTE_OFFSET ? want !== tok : vocab[tok] !== i) {
        throw new Error(`tokenizer: ${path}: id ${i} must be ${JSON.stringify(tok)} (this engine's fixed byte-level layout)`);
      }
    }
    const merges: Array<[number, number]> = [];
    const raw: unknown[] = j.model.merges ?? [];
    const ids = new Map<string, number>(base.tokens.map((t, i) => [t, i]));
    raw.forEach((m, r) => {
      const [a, b] = typeof m === 'string' ? splitMerge(m) : (m as [string, string]);
      const ia = ids.get(a);
      const ib = ids.get(b);
      if (ia === undefined || ib === undefined) throw new Error(`tokenizer: ${path}: merge ${r} (${a} ${b}) uses an unknown token`);
      const id = FIRST_MERGE_ID + r;
      if (vocab[a + b] !== id) throw new Error(`tokenizer: ${path}: merge ${r} result must have id ${id}`);
      merges.push([ia, ib]);
      ids.set(a + b, id);
    });
    const tok = new Tokenizer(merges);
    if (Object.keys(vocab).length !== tok.vocabSize) throw new Error(`tokenizer: ${path}: vocab has ${Object.keys(vocab).length} entries, expected ${tok.vocabSize}`);
    return tok;
  }
}

function splitMerge(s: string): [string, string] {
  const i = s.indexOf(' ', 1);
  return [s.slice(0, i), s.slice(i + 1)];
}

function pairKey(a: number, b: number): number {
  return a * 1_048_576 + b;
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Learn `numMerges` BPE merges from `texts` (deterministic: the most frequent pair wins, ties go to
 * the smallest pair of ids). Returns a Tokenizer with bytes + those merges.
 */
export function trainBpe(texts: Iterable<string>, numMerges: number): Tokenizer {
  const wordCounts = new Map<string, number>();
  for (const t of texts) for (const w of pretokenize(t)) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
  const words: number[][] = [];
  const counts: number[] = [];
  for (const [w, c] of wordCounts) {
    words.push(Array.from(utf8.encode(w), (b) => b + BYTE_OFFSET));
    counts.push(c);
  }
  const merges: Array<[number, number]> = [];
  const strs = new Tokenizer().tokens.slice();
  const seen = new Set(strs);
  for (let r = 0; r < numMerges; r++) {
    const pc = new Map<number, number>();
    for (let wi = 0; wi < words.length; wi++) {
      const w = words[wi];
      for (let i = 0; i + 1 < w.length; i++) {
        const k = pairKey(w[i], w[i + 1]);
        pc.set(k, (pc.get(k) ?? 0) + counts[wi]);
      }
    }
    let bestK = -1;
    let bestC = 0;
    for (const [k, c] of pc) {
      if (!(c > bestC || (c === bestC && k < bestK))) continue;
      // a pair whose string already exists (reachable by another split) would duplicate a token
      if (seen.has(strs[Math.floor(k / 1_048_576)] + strs[k % 1_048_576])) continue;
      bestC = c;
      bestK = k;
    }
    if (bestK < 0 || bestC < 2) break;
    const a = Math.floor(bestK / 1_048_576);
    const b = bestK % 1_048_576;
    const id = FIRST_MERGE_ID + r;
    merges.push([a, b]);
    strs.push(strs[a] + strs[b]);
    seen.add(strs[id]);
    for (let wi = 0; wi < words.length; wi++) {
      const w = words[wi];
      if (w.length < 2) continue;
      const next: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          next.push(id);
          i++;
        } else next.push(w[i]);
      }
      words[wi] = next;
    }
  }
  return new Tokenizer(merges);
}
