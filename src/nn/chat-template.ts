/**
 * A model's own chat template, rendered with `@huggingface/jinja` (Hugging Face's JavaScript
 * implementation of the Jinja subset that transformers' `apply_chat_template` uses).
 *
 * Where it comes from, first found wins (as transformers loads it): `chat_template.jinja` (the text
 * itself), `chat_template.json` (`{"chat_template": "…"}`), `tokenizer_config.json`'s `chat_template`
 * (a string, or a list of `{name, template}` of which the one named "default" is used). The template
 * sees `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, `pad_token`, `unk_token` (the
 * texts tokenizer_config.json names) and `raise_exception(msg)` (the library's), like transformers.
 *
 * Tokenizing a rendered conversation (`encodeChat`): the text is encoded without added special
 * tokens — the template writes the ones it wants, e.g. `{{ bos_token }}` — and the tokenizer's
 * prompt prefix (BOS when the files say add_bos_token) is put in front only when the rendered text
 * does not already start with it, so BOS is never doubled and never missing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import type { TextTokenizer } from './hf-tokenizer.ts';
import { readJson, specialTokenText } from './hf-tokenizer.ts';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderOptions {
  /** End with the header of an assistant turn (default true: the prompt of a reply). */
  addGenerationPrompt?: boolean;
  /** More variables for the template (e.g. `enable_thinking`). */
  extra?: Record<string, unknown>;
}


/** The template text from a `chat_template` value: a string, or a list of {name, template} ("default" used). */
function templateText(v: unknown, where: string): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const d = v.find((t) => typeof t === 'object' && t !== null && (t as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    if (d && typeof d.template === 'string') return d.template;
    throw new Error(`${where}: chat_template is a list without a {name: "default", template} entry`);
  }
  throw new Error(`${where}: chat_template must be a string or a list of {name, template}, got ${JSON.stringify(v).slice(0, 80)}`);
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    /** The Jinja source. */
    readonly source: string,
    /** Special token texts the template may use. */
    readonly specialTokens: Readonly<Record<'bos_token' | 'eos_token' | 'pad_token' | 'unk_token', string | null>>,
    /** Where the template came from (for messages). */
    readonly origin: string,
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new Error(`${origin}: the chat template does not parse (${(e as Error).message})`);
    }
  }

  /** The template of model folder `dir`, or null when it has none. */
  static fromDir(dir: string): ChatTemplate | null {
    const cfgPath = join(dir, 'tokenizer_config.json');
    const cfg = readJson(cfgPath) ?? {};
    const mapPath = join(dir, 'special_tokens_map.json');
    const map = readJson(mapPath) ?? {};
    const special = (k: string): string | null => specialTokenText(k in cfg ? cfg[k] : map[k]);
    const tokens = { bos_token: special('bos_token'), eos_token: special('eos_token'), pad_token: special('pad_token'), unk_token: special('unk_token') };
    const jinja = join(dir, 'chat_template.jinja');
    if (existsSync(jinja)) return new ChatTemplate(readFileSync(jinja, 'utf8'), tokens, jinja);
    const json = join(dir, 'chat_template.json');
    if (existsSync(json)) {
      const j = readJson(json)!;
      if (j.chat_template === undefined) throw new Error(`${json}: no chat_template key`);
      return new ChatTemplate(templateText(j.chat_template, json), tokens, json);
    }
    if (cfg.chat_template === undefined || cfg.chat_template === null) return null;
    return new ChatTemplate(templateText(cfg.chat_template, cfgPath), tokens, cfgPath);
  }

  /** The conversation as the model's prompt text. */
  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    const vars: Record<string, unknown> = {
      ...opts.extra,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
    };
    for (const [k, v] of Object.entries(this.specialTokens)) if (v !== null) vars[k] = v;
    try {
      return this.template.render(vars);
    } catch (e) {
      throw new Error(`${this.origin}: rendering the chat template failed (${(e as Error).message})`);
    }
  }
}

/** Ids of a rendered conversation: no special tokens added to the text, the prompt prefix (BOS) only if the text does not start with it. */
export function encodeChat(tok: TextTokenizer, rendered: string): number[] {
  const ids = tok.encode(rendered);
  const pre = tok.promptPrefix;
  const has = pre.length <= ids.length && pre.every((x, i) => ids[i] === x);
  return has ? ids : [...pre, ...ids];
}
