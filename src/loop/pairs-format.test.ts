import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { buildPrompt, extractProgram } from '../factory/index.ts';
import { resolveConfig } from './config.ts';
import { conversationalPair, samplesInChat, trlPreferenceProblems } from './pairs-format.ts';

const A = 'function merge(taskVectors, ctx) {\n  return taskVectors[0].mul(0.5);\n}';
const B = 'function merge(taskVectors, ctx) {\n  return taskVectors[1];\n}';
const prompt = buildPrompt({ apiReference: '# API\n\n`t.mul(x)`', example: { name: 'ex.js', code: A } });

/** A store with one iteration and one pair (A chosen over B); the pairs file in `format`. */
function exported(format: 'standard' | 'conversational'): unknown[] {
  const tmp = makeTempDir('selfdev-pairs-format-');
  try {
    const store = RunStore.open(tmp.path);
    store.createRun({ name: 'p', config: {}, seed: 1, evalConfig: {} });
    const it = store.startIteration({ t: 1, temperature: 1, nTarget: 2 });
    const [a, b] = store.addSamples([{ iterationId: it.id, code: A }, { iterationId: it.id, code: B }]);
    store.addPairs(it.id, prompt.text, [{ chosenHash: a!.hash, rejectedHash: b!.hash, chosenScore: 0.5, rejectedScore: 0.1, source: 'current' }]);
    const file = join(tmp.path, 'pairs.jsonl');
    store.exportPairsJsonl(it.id, file, format === 'conversational' ? { format: conversationalPair(prompt.messages) } : {});
    store.close();
    return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  } finally {
    tmp.cleanup();
  }
}

test('chat sampling exports TRL conversational preference pairs: prompt = the system and user messages, chosen/rejected = one assistant message with the fenced program', () => {
  const [line] = exported('conversational') as any[];
  assert.deepEqual(trlPreferenceProblems(line, 'conversational'), []);
  assert.deepEqual(line.prompt, prompt.messages);
  assert.deepEqual(line.prompt.map((m: any) => m.role), ['system', 'user']);
  assert.deepEqual(line.chosen, [{ role: 'assistant', content: '```js\n' + A + '\n```' }]);
  // the reply is what the factory reads a program from in chat mode
  assert.equal(extractProgram(line.chosen[0].content).code, A);
  assert.equal(extractProgram(line.rejected[0].content).code, B);
  assert.deepEqual([line.chosen_score, line.rejected_score, line.iteration, line.source], [0.5, 0.1, 1, 'current']);
  assert.deepEqual(trlPreferenceProblems(line, 'standard').length, 3, 'not the standard format');
});

test('completion sampling exports TRL standard preference pairs: the prompt text and the program that continues it', () => {
  const [line] = exported('standard') as any[];
  assert.deepEqual(trlPreferenceProblems(line, 'standard'), []);
  assert.equal(line.prompt, prompt.text);
  assert.ok(line.prompt.endsWith(prompt.prefix));
  assert.equal(line.chosen, A);
  assert.equal(extractProgram(line.prompt.slice(-prompt.prefix.length) + line.chosen + prompt.stop[0]).code, A);
  assert.ok(trlPreferenceProblems(line, 'conversational').length > 0);
});

test('the schema check flags what TRL would not read as a preference pair', () => {
  const ok = { prompt: [{ role: 'user', content: 'q' }], chosen: [{ role: 'assistant', content: 'a' }], rejected: [{ role: 'assistant', content: 'b' }] };
  assert.deepEqual(trlPreferenceProblems(ok, 'conversational'), []);
  assert.deepEqual(trlPreferenceProblems({ ...ok, chosen: [{ role: 'user', content: 'a' }] }, 'conversational'), ['chosen[0] must be {role: assistant, content: string}']);
  assert.deepEqual(trlPreferenceProblems({ ...ok, prompt: [{ role: 'assistant', content: 'q' }] }, 'conversational'), ['prompt must end with a user message']);
  assert.deepEqual(trlPreferenceProblems({ ...ok, rejected: [] }, 'conversational'), ['rejected must be a non-empty list of messages']);
  assert.deepEqual(trlPreferenceProblems({ prompt: 'p', chosen: 1, rejected: 'r' }, 'standard'), ['chosen must be a string']);
});

test('which runs sample in chat: openai with mode chat (its default); builtin, llamacpp and openai completions sample completions', () => {
  const w = { seedModel: 'm', experts: ['e'] };
  assert.equal(samplesInChat(resolveConfig({ world: w, factory: { kind: 'openai', url: 'http://h:1/v1', model: 'x' } })), true);
  assert.equal(samplesInChat(resolveConfig({ world: w, factory: { kind: 'openai', url: 'http://h:1/v1', model: 'x', mode: 'completions' } })), false);
  assert.equal(samplesInChat(resolveConfig({ world: w, factory: { kind: 'builtin', dir: 'f' } })), false);
});
