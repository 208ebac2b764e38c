import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig } from './config.ts';

const world = { seedModel: 'm', experts: ['e'] };
const openai = (f: Record<string, unknown>) => resolveConfig({ world, factory: { kind: 'openai', url: 'http://127.0.0.1:8000/v1', model: 'coder', ...f } });

test('factory kind openai: every key a real-LLM user sets is accepted and kept', () => {
  const c = openai({
    mode: 'completions', concurrency: 16, timeoutMs: 300_000, retries: 2, apiKeyEnv: 'VLLM_KEY', extraBody: { repetition_penalty: 1.05 }, maxTokens: 1024,
    promptStyle: 'builtin', maxPromptTokens: 20, server: { command: 'vllm serve "$MODEL" --port "$PORT"', dir: 'models/coder', readyTimeoutSec: 900 },
  });
  assert.deepEqual(c.factory, {
    kind: 'openai', url: 'http://127.0.0.1:8000/v1', model: 'coder', mode: 'completions', concurrency: 16, timeoutMs: 300_000, retries: 2, apiKeyEnv: 'VLLM_KEY',
    extraBody: { repetition_penalty: 1.05 }, maxTokens: 1024, promptStyle: 'builtin', maxPromptTokens: 20, server: { command: 'vllm serve "$MODEL" --port "$PORT"', dir: 'models/coder', readyTimeoutSec: 900 },
  });
});

test('factory kind openai: unknown keys are rejected by name, bad values with what is expected', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ temprature: 1 }, /unknown key factory\.temprature for factory\.kind openai \(known: kind, url, model, maxTokens, mode, concurrency, timeoutMs, retries, apiKeyEnv, extraBody, promptStyle, tokenizer, maxPromptTokens, server\)/],
    [{ server: { command: 'x', dir: 'd', port: 1 } }, /unknown key factory\.server\.port \(known: command, dir, readyTimeoutSec\)/],
    [{ server: { command: 'x' } }, /factory\.server\.dir must be a non-empty string/],
    [{ mode: 'responses' }, /factory\.mode must be chat or completions/],
    [{ concurrency: 0 }, /factory\.concurrency must be an integer ≥ 1/],
    [{ retries: -1 }, /factory\.retries must be an integer ≥ 0/],
    [{ apiKeyEnv: 'sk-123' }, /factory\.apiKeyEnv must be the name of an environment variable/],
    [{ extraBody: [1] }, /factory\.extraBody must be a mapping/],
    [{ promptStyle: 'short' }, /factory\.promptStyle must be paper .* or builtin/],
    [{ promptStyle: 'builtin', tokenizer: 't' }, /promptStyle builtin sends token ids, which only \/completions takes/],
    [{ mode: 'completions', promptStyle: 'builtin' }, /promptStyle builtin needs factory\.tokenizer/],
    [{ maxPromptTokens: 20 }, /belong to promptStyle: builtin/],
  ];
  for (const [f, re] of cases) assert.throws(() => openai(f), re, JSON.stringify(f));
});
