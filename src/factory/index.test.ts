import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFactory, parseFactorySpec } from './index.ts';
import { makeRandomModel } from '../serve/testing.ts';

test('parseFactorySpec: the three backends with their parameters', () => {
  assert.deepEqual(parseFactorySpec('builtin:runs/factory?batch=4'), { kind: 'builtin', dir: 'runs/factory', batchSize: 4, defaultMaxTokens: undefined, maxPromptTokens: undefined });
  assert.deepEqual(parseFactorySpec('llamacpp:/m/x.gguf?ctx=2048&sequences=2'), { kind: 'llamacpp', path: '/m/x.gguf', contextSize: 2048, threads: undefined, sequences: 2, defaultMaxTokens: undefined, maxPromptTokens: undefined });
  assert.equal((parseFactorySpec('llamacpp:/m/x.gguf?prompt_tokens=20') as { maxPromptTokens?: number }).maxPromptTokens, 20);
  assert.deepEqual(parseFactorySpec('openai:http://127.0.0.1:8080/v1?model=qwen&mode=completions&retries=2'), {
    kind: 'openai', baseURL: 'http://127.0.0.1:8080/v1', model: 'qwen', mode: 'completions', apiKeyEnv: undefined, timeoutMs: undefined, retries: 2, concurrency: undefined, defaultMaxTokens: undefined,
  });
});

test('parseFactorySpec: specific errors', () => {
  assert.throws(() => parseFactorySpec('gpt4'), /expected builtin:DIR, llamacpp:FILE\.gguf or openai:URL\?model=NAME/);
  assert.throws(() => parseFactorySpec('openai:http://x/v1'), /openai needs \?model=NAME/);
  assert.throws(() => parseFactorySpec('openai:http://x/v1?model=m&mode=edit'), /mode must be chat or completions/);
  assert.throws(() => parseFactorySpec('builtin:dir?temperature=1'), /unknown parameter 'temperature' for builtin/);
  assert.throws(() => parseFactorySpec('llamacpp:x.gguf?ctx=big'), /ctx must be a non-negative integer, got 'big'/);
});

test('openFactory opens each backend lazily; errors name the file', async () => {
  const f = await openFactory('openai:http://127.0.0.1:9/v1?model=m&retries=0');
  assert.equal(f.name, 'openai:chat:m@127.0.0.1:9');
  await f.close();
  await assert.rejects(openFactory('llamacpp:/nonexistent/model.gguf'), /model file not found: \/nonexistent\/model\.gguf/);
  const tmp = mkdtempSync(join(tmpdir(), 'factory-index-'));
  try {
    await makeRandomModel(join(tmp, 'm'), {}, 1);
    const b = await openFactory(`builtin:${join(tmp, 'm')}?batch=2`);
    assert.match(b.name, /^builtin:/);
    const c = await b.sample({ text: 'x', messages: [], prefix: '', stop: [] }, 3, { temperature: 1, seed: 0, maxTokens: 4 });
    assert.equal(c.length, 3);
    await b.close();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
