/**
 * The preference pairs `dpo.command` gets (RUN/pairs/iter-T.jsonl), in the format the factory
 * samples in, as TRL's dataset formats define them (https://huggingface.co/docs/trl/dataset_formats):
 *
 * - chat sampling (factory.kind openai, mode chat): **conversational preference** —
 *   `prompt` = the factory's system and user messages, `chosen` / `rejected` = one assistant message
 *   holding the fenced program (what a chat reply the factory extracts from looks like);
 * - completion sampling (builtin, llamacpp, openai mode completions): **standard preference** —
 *   `prompt` = the completion text (ending with the opening fence), `chosen` / `rejected` = the
 *   program text that continues it (what the in-process DPO trains on).
 *
 * Each line also carries the pair's metadata (hashes, scores, iteration, arm, source), which TRL
 * ignores.
 */
import { CODE_CLOSE, CODE_OPEN, type ChatMessage } from '../factory/index.ts';
import type { LoopConfig } from './config.ts';

export type PairRow = { prompt: string; chosen: string; rejected: string };
export type ConversationalPair = { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };

/** Whether the loop's factory samples through chat messages. */
export function samplesInChat(cfg: LoopConfig): boolean {
  return cfg.factory.kind === 'openai' && (cfg.factory.mode ?? 'chat') === 'chat';
}

/** A program as the assistant's reply: one ```js block. */
export function assistantReply(code: string): ChatMessage {
  return { role: 'assistant', content: `${CODE_OPEN}${code}${CODE_CLOSE}` };
}

/** The row formatter for chat sampling (TRL conversational preference). */
export function conversationalPair(messages: ChatMessage[]): (r: PairRow) => ConversationalPair {
  const prompt = messages.map((m) => ({ role: m.role, content: m.content }));
  return (r) => ({ prompt, chosen: [assistantReply(r.chosen)], rejected: [assistantReply(r.rejected)] });
}

/**
 * TRL's preference schema, checked on one parsed JSONL line: 'standard' (three strings) or
 * 'conversational' (lists of {role, content} messages; the prompt ends with a user turn, chosen and
 * rejected are assistant turns). Returns the problems found (empty when the line conforms).
 */
export function trlPreferenceProblems(line: unknown, format: 'standard' | 'conversational'): string[] {
  const out: string[] = [];
  if (typeof line !== 'object' || line === null || Array.isArray(line)) return ['not a JSON object'];
  const o = line as Record<string, unknown>;
  if (format === 'standard') {
    for (const k of ['prompt', 'chosen', 'rejected']) if (typeof o[k] !== 'string') out.push(`${k} must be a string`);
    return out;
  }
  const messages = (k: string, roles: string[]): ChatMessage[] | null => {
    const v = o[k];
    if (!Array.isArray(v) || v.length === 0) {
      out.push(`${k} must be a non-empty list of messages`);
      return null;
    }
    v.forEach((m, i) => {
      const ok = typeof m === 'object' && m !== null && Object.keys(m).sort().join() === 'content,role' && typeof m.content === 'string' && roles.includes(m.role);
      if (!ok) out.push(`${k}[${i}] must be {role: ${roles.join('|')}, content: string}`);
    });
    return v as ChatMessage[];
  };
  const p = messages('prompt', ['system', 'user', 'assistant']);
  if (p && p[p.length - 1]?.role !== 'user') out.push('prompt must end with a user message');
  for (const k of ['chosen', 'rejected']) {
    const m = messages(k, ['assistant']);
    if (m && m.length !== 1) out.push(`${k} must be one assistant message`);
  }
  return out;
}
