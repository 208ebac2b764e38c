/**
 * Loading a model folder for `selfdev serve`: at startup and for `POST /selfdev/load` (the same
 * checks both times). A folder is checked in full (config.json and tokenizer.json against the
 * tensors, the chat template compiled) and loaded before anything is swapped, so a bad folder is an
 * error that leaves the running model untouched. The weights go straight into the inference engine
 * (checkpoint.ts `loadInferModel`: no framework, so no 32-bit wasm heap ceiling; ≈ 4 bytes per
 * parameter). While a reload runs, the old model and the new one are both in memory.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { EngineModel } from '../nn/generate.ts';
import type { TextTokenizer } from '../nn/hf-tokenizer.ts';
import type { ChatTemplate } from '../nn/chat-template.ts';

/** A loaded model with what the server needs to answer with it. */
export interface ServedModel {
  /** The engine-only model of loadInferModel (or a framework Llama handed in by a caller). */
  model: EngineModel;
  tok: TextTokenizer;
  /** Model id reported by /v1/models and required (when given) in requests. */
  name: string;
  /** Absolute folder it was loaded from (null: handed in by the caller). */
  dir: string | null;
  chatTemplate: ChatTemplate | null;
  eosIds: readonly number[];
  /** Frees the tokenizer (and, for a framework model, its tensors) (called once no request uses it any more). */
  release: () => Promise<void>;
}

/** Thrown for a folder that cannot be served (missing, incomplete, inconsistent): the client's mistake. */
export class ModelFolderError extends Error {
  override name = 'ModelFolderError';
}

/**
 * The engine's modules, imported once (on first use, so that importing the server stays light): later
 * loads then run without waiting on the module loader, which lets a reload finish between two engine
 * batches of the requests in flight.
 */
let mods: Promise<{
  readLlamaFolder: typeof import('../io/model-config.ts').readLlamaFolder;
  checkTokenizerFile: typeof import('../io/model-config.ts').checkTokenizerFile;
  ChatTemplate: typeof import('../nn/chat-template.ts').ChatTemplate;
  loadInferModel: typeof import('../nn/checkpoint.ts').loadInferModel;
  closeTokenizer: typeof import('../nn/load-tokenizer.ts').closeTokenizer;
  endOfTextIds: typeof import('../nn/load-tokenizer.ts').endOfTextIds;
}> | null = null;
function modules(): NonNullable<typeof mods> {
  return (mods ??= (async () => {
    const [mc, ct, ck, lt] = await Promise.all([import('../io/model-config.ts'), import('../nn/chat-template.ts'), import('../nn/checkpoint.ts'), import('../nn/load-tokenizer.ts')]);
    return { readLlamaFolder: mc.readLlamaFolder, checkTokenizerFile: mc.checkTokenizerFile, ChatTemplate: ct.ChatTemplate, loadInferModel: ck.loadInferModel, closeTokenizer: lt.closeTokenizer, endOfTextIds: lt.endOfTextIds };
  })());
}

/** Check and load `dir` (name: `name`, else the folder's name). Throws ModelFolderError for a bad folder. */
export async function loadServedModel(dir: string, name?: string): Promise<ServedModel> {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new ModelFolderError(`model folder not found: ${dir}`);
  if (!existsSync(join(abs, 'config.json'))) throw new ModelFolderError(`${dir}: not a model folder (no config.json)`);
  if (!existsSync(join(abs, 'tokenizer.json'))) throw new ModelFolderError(`${dir}: no tokenizer.json`);
  const { readLlamaFolder, checkTokenizerFile, ChatTemplate, loadInferModel, closeTokenizer, endOfTextIds } = await modules();
  let chatTemplate: ChatTemplate | null;
  try {
    // config.json and tokenizer.json checked against the tensors first (the shared reader)
    const spec = readLlamaFolder(abs, { tokenizer: false });
    checkTokenizerFile(join(abs, 'tokenizer.json'), { vocabSize: spec.vocab_size });
    chatTemplate = ChatTemplate.fromDir(abs); // a broken template fails here, not at the first request
  } catch (e) {
    throw new ModelFolderError((e as Error).message);
  }
  let loaded: { model: EngineModel; tokenizer: TextTokenizer | null };
  try {
    loaded = loadInferModel(abs, { tokenizer: 'any' });
  } catch (e) {
    throw new ModelFolderError(`${dir}: ${(e as Error).message}`);
  }
  const { model, tokenizer } = loaded;
  if (!tokenizer) {
    throw new ModelFolderError(`${dir}: no tokenizer.json`);
  }
  return {
    model, tok: tokenizer, name: name ?? basename(abs), dir: abs, chatTemplate, eosIds: endOfTextIds(abs, tokenizer),
    release: async () => {
      // the engine's weights are plain arrays, freed with the last reference
      await closeTokenizer(tokenizer);
    },
  };
}

/** Whether `host` (a --host value) is a loopback interface. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}
