/**
 * The builtin model's own prompt, shared by the in-process builtin factory and the openai factory's
 * `promptStyle: builtin` (the same model behind `selfdev serve`): bos + the last tokens of the
 * prompt's text (at most `maxPromptTokens`, leaving room for `maxTokens` new tokens in a context of
 * `ctx`), with a `continuation` (the end of the text) kept whole after the shortened rest.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '../nn/tokenizer.ts';

/** The builtin factory's default max new tokens per program. */
export const BUILTIN_DEFAULT_MAX_TOKENS = 512;

export function builtinPromptIds(tok: Tokenizer, ctx: number, text: string, maxTokens: number, maxPromptTokens = Infinity, continuation = ''): number[] {
  if (continuation && !text.endsWith(continuation)) throw new Error('builtin factory: the prompt text does not end with its continuation');
  const cont = continuation ? tok.encode(continuation) : [];
  const room = Math.min(maxPromptTokens, ctx - maxTokens - 1 - cont.length);
  if (room < 1) throw new Error(`builtin factory: maxTokens ${maxTokens}${cont.length ? ` and a continuation of ${cont.length} tokens leave` : ' leaves'} no room for a prompt in a context of ${ctx} tokens`);
  const ids = tok.encode(continuation ? text.slice(0, text.length - continuation.length) : text);
  return [tok.bosId, ...ids.slice(Math.max(0, ids.length - room)), ...cont];
}

/** A model folder's tokenizer and context length (config.json max_position_embeddings), for building its own prompt. */
export function loadPromptTokenizer(dir: string, who: string): { tok: Tokenizer; ctx: number } {
  for (const f of ['tokenizer.json', 'config.json']) if (!existsSync(join(dir, f))) throw new Error(`${who}: ${join(dir, f)} not found (promptStyle builtin reads the served model's tokenizer and context length from its folder)`);
  let ctx: unknown;
  try {
    ctx = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { max_position_embeddings?: unknown }).max_position_embeddings;
  } catch (e) {
    throw new Error(`${who}: ${join(dir, 'config.json')} is not JSON (${(e as Error).message})`);
  }
  if (!Number.isInteger(ctx) || (ctx as number) < 2) throw new Error(`${who}: ${join(dir, 'config.json')} has no integer max_position_embeddings`);
  return { tok: Tokenizer.load(dir), ctx: ctx as number };
}
