/**
 * Public surface of the algorithm factory: open a backend from a spec, build prompts, extract
 * programs, generate the seed corpus.
 *
 * Spec strings (for CLI flags and run configs):
 *   builtin:MODEL_DIR[?batch=8&max_tokens=512&prompt_tokens=N]
 *   llamacpp:FILE.gguf[?ctx=4096&threads=1&sequences=1&max_tokens=1024&prompt_tokens=N]
 *   openai:BASE_URL?model=NAME[&mode=chat|completions&key_env=VAR&timeout_ms=N&retries=N&concurrency=N]
 *     e.g. openai:http://127.0.0.1:8080/v1?model=qwen2.5-coder&mode=completions
 */
import type { AlgorithmFactory } from './types.ts';
import type { OpenAIFactoryOptions } from './openai.ts';
import type { LlamaCppFactoryOptions } from './llamacpp.ts';
import type { BuiltinFactoryOptions } from './builtin.ts';

export type { AlgorithmFactory, Candidate, ChatMessage, FactoryPrompt, SampleOptions } from './types.ts';
export { buildPrompt, loadPromptFiles, DEFAULT_TASK, PROGRAM_HEADER, CODE_OPEN, CODE_CLOSE } from './prompt.ts';
export type { PromptInputs, Inspiration, Failure, PromptLimits } from './prompt.ts';
export { extractProgram } from './extract.ts';
export type { ExtractResult } from './extract.ts';
export { generateCorpus, generateProgram, trainingExample, writeCorpusJsonl, FAMILIES } from './corpus.ts';

export type FactorySpec =
  | ({ kind: 'openai' } & OpenAIFactoryOptions)
  | ({ kind: 'llamacpp'; path: string } & LlamaCppFactoryOptions)
  | ({ kind: 'builtin'; dir: string } & BuiltinFactoryOptions);

/** Parse a spec string (see the module comment). Throws a specific error. */
export function parseFactorySpec(spec: string): FactorySpec {
  const m = /^(builtin|llamacpp|openai):(.+)$/.exec(spec);
  if (!m) throw new Error(`factory spec ${JSON.stringify(spec)}: expected builtin:DIR, llamacpp:FILE.gguf or openai:URL?model=NAME`);
  const [, kind, rest] = m;
  const q = rest.indexOf('?');
  const target = q < 0 ? rest : rest.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1));
  const allowed: Record<string, string[]> = {
    builtin: ['batch', 'max_tokens', 'prompt_tokens'],
    llamacpp: ['ctx', 'threads', 'sequences', 'max_tokens', 'prompt_tokens'],
    openai: ['model', 'mode', 'key_env', 'timeout_ms', 'retries', 'concurrency', 'max_tokens'],
  };
  for (const k of params.keys()) if (!allowed[kind].includes(k)) throw new Error(`factory spec ${JSON.stringify(spec)}: unknown parameter '${k}' for ${kind} (allowed: ${allowed[kind].join(', ')})`);
  const int = (k: string): number | undefined => {
    const v = params.get(k);
    if (v === null) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`factory spec ${JSON.stringify(spec)}: ${k} must be a non-negative integer, got '${v}'`);
    return n;
  };
  if (!target) throw new Error(`factory spec ${JSON.stringify(spec)}: missing ${kind === 'openai' ? 'URL' : 'path'}`);
  if (kind === 'builtin') return { kind, dir: target, batchSize: int('batch'), defaultMaxTokens: int('max_tokens'), maxPromptTokens: int('prompt_tokens') };
  if (kind === 'llamacpp') return { kind, path: target, contextSize: int('ctx'), threads: int('threads'), sequences: int('sequences'), defaultMaxTokens: int('max_tokens'), maxPromptTokens: int('prompt_tokens') };
  const model = params.get('model');
  if (!model) throw new Error(`factory spec ${JSON.stringify(spec)}: openai needs ?model=NAME`);
  const mode = params.get('mode') ?? 'chat';
  if (mode !== 'chat' && mode !== 'completions') throw new Error(`factory spec ${JSON.stringify(spec)}: mode must be chat or completions, got '${mode}'`);
  return {
    kind: 'openai',
    baseURL: target,
    model,
    mode,
    apiKeyEnv: params.get('key_env') ?? undefined,
    timeoutMs: int('timeout_ms'),
    retries: int('retries'),
    concurrency: int('concurrency'),
    defaultMaxTokens: int('max_tokens'),
  };
}

/** Open a backend. Heavy modules (tfjs, node-llama-cpp) are imported only for the backend used. */
export async function openFactory(spec: FactorySpec | string): Promise<AlgorithmFactory> {
  const s = typeof spec === 'string' ? parseFactorySpec(spec) : spec;
  const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  switch (s.kind) {
    case 'openai': {
      const { OpenAIFactory } = await import('./openai.ts');
      const { kind: _k, ...o } = s;
      return new OpenAIFactory(defined(o));
    }
    case 'llamacpp': {
      const { LlamaCppFactory } = await import('./llamacpp.ts');
      const { kind: _k, path, ...o } = s;
      return LlamaCppFactory.load(path, defined(o));
    }
    case 'builtin': {
      const { BuiltinFactory } = await import('./builtin.ts');
      const { kind: _k, dir, ...o } = s;
      return BuiltinFactory.load(dir, defined(o));
    }
  }
}
