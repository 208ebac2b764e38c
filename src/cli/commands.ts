import type { Command } from './command.ts';

/**
 * Every command, loaded lazily so that `selfdev inspect` does not pay for the neural-network
 * engine. Add a command by adding one line here (keep them in the order `--help` shows them).
 */
export const COMMANDS: Array<{ name: string; summary: string; load: () => Promise<Command> }> = [
  { name: 'merge', summary: 'Merge checkpoints from a mergekit YAML config (every mergekit method).', load: async () => (await import('./merge.ts')).command },
  { name: 'inspect', summary: 'List a checkpoint\'s tensors, dtypes, shapes and parameter count, and validate it.', load: async () => (await import('./inspect.ts')).command },
  { name: 'score', summary: 'Score GSM8k-format completions (lm-eval strict and flexible exact match).', load: async () => (await import('./score.ts')).command },
  { name: 'train', summary: 'Train or fine-tune a tiny Llama from a JSON/YAML config.', load: async () => (await import('./train.ts')).command },
  { name: 'dpo', summary: 'DPO-train a model on preference pairs (TRL JSONL).', load: async () => (await import('./dpo.ts')).command },
  { name: 'generate', summary: 'Generate text with a model folder (batched, KV cache).', load: async () => (await import('./generate.ts')).command },
  { name: 'demo', summary: 'Run the embedded end-to-end default (what `npm start` runs).', load: async () => (await import('./demo.ts')).command },
];
