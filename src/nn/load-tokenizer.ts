/**
 * Which tokenizer runs a model folder: the engine's own byte-level BPE (`tokenizer.ts`, the tiny
 * world's fixed layout: ids 0 `<pad>`, 1 `<s>`, 2 `</s>`, 3..258 the bytes, then merges) when the
 * folder's files are exactly that layout and its tokenizer_config.json agrees (BOS added, EOS not);
 * any other `tokenizer.json` through the Hugging Face `tokenizers` library (`hf-tokenizer.ts`). The
 * ids are the same either way for the engine's layout (tokenizer-files.test.ts); the engine's own
 * one is kept there because it is synchronous, fast and needed by training (`requireEngineTokenizer`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HfTokenizer } from './hf-tokenizer.ts';
import type { TextTokenizer } from './hf-tokenizer.ts';
import { Tokenizer } from './tokenizer.ts';

export type { TextTokenizer } from './hf-tokenizer.ts';

/** The engine's layout, described for error messages. */
export const ENGINE_LAYOUT = 'the engine\'s byte-level BPE layout: ids 0 "<pad>", 1 "<s>", 2 "</s>", 3..258 the 256 bytes, then merges';

/** Whether tokenizer_config.json (when present) says what the engine does: BOS added, EOS not. */
function configMatchesEngine(dir: string): boolean {
  const path = join(dir, 'tokenizer_config.json');
  if (!existsSync(path)) return true;
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return false; // let the HF loader report the broken file
  }
  return (c.add_bos_token === undefined || c.add_bos_token === true) && (c.add_eos_token === undefined || c.add_eos_token === false);
}

/**
 * The tokenizer of model folder `dir`: the engine's when its files are the engine's layout, else the
 * Hugging Face library's. `vocabSize` (the model's embedding rows): every id must fit.
 */
export function loadTokenizer(dir: string, opts: { vocabSize?: number } = {}): TextTokenizer {
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`${dir}: no tokenizer.json`);
  let tok: TextTokenizer | null = null;
  try {
    if (configMatchesEngine(dir)) tok = Tokenizer.load(dir);
  } catch {
    tok = null; // another layout: the library reads it
  }
  tok ??= HfTokenizer.load(dir);
  if (opts.vocabSize !== undefined && tok.vocabSize > opts.vocabSize) {
    const n = tok.vocabSize;
    if (tok instanceof HfTokenizer) void tok.close();
    throw new Error(`${dir}: tokenizer has ${n} tokens (ids up to ${n - 1}) but the model's vocab_size is ${opts.vocabSize}`);
  }
  return tok;
}

/**
 * `tok` as the engine's own tokenizer, for a path that truly needs its fixed layout (training and
 * DPO write it back with the model, the tiny factory's prompts are cut in its ids); else an error
 * naming the path and the folder.
 */
export function requireEngineTokenizer(tok: TextTokenizer, dir: string, path: string): Tokenizer {
  if (tok instanceof Tokenizer) return tok;
  throw new Error(`${path} needs ${ENGINE_LAYOUT}; ${join(dir, 'tokenizer.json')} has another layout (a model's own tokenizer is supported by merge, eval, serve and server-side scoring, not here)`);
}

/**
 * The engine's own tokenizer of `dir`, for a path that truly needs its layout (see
 * requireEngineTokenizer); the error names the path and says why the files are not that layout.
 */
export function loadEngineTokenizer(dir: string, path: string, opts: { vocabSize?: number } = {}): Tokenizer {
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`${dir}: no tokenizer.json`);
  let tok: Tokenizer;
  try {
    tok = Tokenizer.load(dir);
  } catch (e) {
    throw new Error(`${path} needs ${ENGINE_LAYOUT}; ${join(dir, 'tokenizer.json')} is not (${(e as Error).message.replace(/^tokenizer: /, '')})`);
  }
  if (!configMatchesEngine(dir)) throw new Error(`${path} needs ${ENGINE_LAYOUT}, which always adds <s> and never </s>; ${join(dir, 'tokenizer_config.json')} says otherwise (add_bos_token / add_eos_token)`);
  if (opts.vocabSize !== undefined && tok.vocabSize > opts.vocabSize) throw new Error(`${dir}: tokenizer has ${tok.vocabSize} tokens but vocab_size is ${opts.vocabSize}`);
  return tok;
}

/** Release what a tokenizer holds (the library's encoding thread); a no-op for the engine's. */
export async function closeTokenizer(tok: TextTokenizer | null | undefined): Promise<void> {
  if (tok instanceof HfTokenizer) await tok.close();
}

/**
 * Ids that end a reply in model folder `dir`: the tokenizer's eos token (when `tok` is given) and
 * every id of `eos_token_id` in config.json and in generation_config.json, each a number or a list
 * (Llama-3-Instruct: [128001, 128009], end of text and end of turn). Ids outside the vocabulary and
 * unreadable files are skipped (the folder reader has already reported a bad config.json).
 */
export function endOfTextIds(dir: string, tok?: TextTokenizer): number[] {
  const out = new Set<number>();
  if (tok && tok.eosId !== null) out.add(tok.eosId);
  const vocab = tok?.vocabSize ?? Infinity;
  for (const file of ['config.json', 'generation_config.json']) {
    let j: { eos_token_id?: unknown };
    try {
      j = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { eos_token_id?: unknown };
    } catch {
      continue; // absent
    }
    for (const v of Array.isArray(j.eos_token_id) ? j.eos_token_id : [j.eos_token_id]) if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < vocab) out.add(v);
  }
  return [...out];
}
