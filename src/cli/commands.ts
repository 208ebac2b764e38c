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
  { name: 'eval', summary: 'Evaluate a model (folder or OpenAI-compatible endpoint) on tiny-world or GSM8k problems.', load: async () => (await import('./eval.ts')).command },
  { name: 'serve', summary: 'Serve a model folder over an OpenAI-compatible HTTP API.', load: async () => (await import('./serve.ts')).command },
  { name: 'export-gguf', summary: 'Export a Llama model folder to a GGUF file for llama.cpp.', load: async () => (await import('./export-gguf.ts')).command },
  { name: 'baselines', summary: "Score the tiny world's baselines (M0, experts, oracles, mergekit methods tuned on dev, reported on test).", load: async () => (await import('./baselines.ts')).command },
  { name: 'check-algorithm', summary: 'Validate a merge algorithm (JS/TS contract) in the sandbox and print the verdict.', load: async () => (await import('./check-algorithm.ts')).command },
  { name: 'report', summary: "Write a run's self-contained report.html from its database.", load: async () => (await import('./report.ts')).command },
  { name: 'dashboard', summary: 'Serve a live web page of a run (read-only), while it runs and after.', load: async () => (await import('./dashboard.ts')).command },
  { name: 'run', summary: 'Run or resume the Self-Developing loop (factory → sandbox → merge → eval → DPO) and write its report.', load: async () => (await import('./run.ts')).command },
  { name: 'worker', summary: 'Evaluate candidates from a run\'s queue (distributed evaluation on Redis; started by SLURM, Kubernetes, Ray or by hand).', load: async () => (await import('./worker.ts')).command },
  { name: 'queue', summary: 'Show the state of a distributed-evaluation queue (jobs by state, live workers).', load: async () => (await import('./queue.ts')).command },
  { name: 'demo', summary: 'Merge demo: every main mergekit method on generated checkpoints, outputs re-read and checked.', load: async () => (await import('./demo.ts')).command },
  { name: 'start', summary: 'The embedded default (`npm start`): the whole loop on the shipped tiny world and builtin factory.', load: async () => (await import('./start.ts')).command },
];
