import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPrompt, loadPromptFiles, CODE_OPEN, CODE_CLOSE, PROGRAM_HEADER, CONTRACT_PATH } from './prompt.ts';
import { extractProgram } from './extract.ts';

const API = '# Algorithm contract\n\nDefine `function merge(taskVectors, ctx)`.\n\n## Tensor API\n\n- `t.add(u)`\n\n```js\n# not a heading\n```';
const EX = { name: 'task_arithmetic.js', code: 'function merge(taskVectors, ctx) {\n  return taskVectors[0].clone();\n}\n' };
const prog = (k: number) => `function merge(taskVectors, ctx) {\n  return taskVectors[0].mul(${k});\n}`;

test('completion text: task, rules, reference, example, ends with the opening of a code block', () => {
  const p = buildPrompt({ apiReference: API, example: EX });
  assert.ok(p.text.endsWith(PROGRAM_HEADER));
  assert.ok(p.text.endsWith(CODE_OPEN));
  assert.equal(p.prefix, CODE_OPEN);
  assert.deepEqual(p.stop, [CODE_CLOSE]);
  assert.match(p.text, /^# Task\n\nYou design model-merging algorithms/);
  assert.match(p.text, /## Algorithm contract/, 'reference headings nested one level');
  assert.match(p.text, /### Tensor API/);
  assert.match(p.text, /```js\n# not a heading\n```/, 'headings inside code blocks untouched');
  assert.ok(p.text.includes('## Example algorithm (task_arithmetic.js)\n\n```js\n' + EX.code.trim() + '\n```'));
  // a completion continuing the prompt with code and the stop string yields that program
  const out = p.prefix + prog(2) + CODE_CLOSE;
  assert.equal(extractProgram(out).code, prog(2));
});

test('chat rendering: system has the task and reference, user the example and request', () => {
  const p = buildPrompt({ apiReference: API, example: EX, task: 'Merge well.' });
  assert.equal(p.messages.length, 2);
  assert.equal(p.messages[0].role, 'system');
  assert.equal(p.messages[1].role, 'user');
  assert.match(p.messages[0].content, /^# Task\n\nMerge well\./);
  assert.ok(p.messages[0].content.includes('`t.add(u)`'));
  assert.ok(!p.messages[0].content.includes('task_arithmetic.js'));
  assert.ok(p.messages[1].content.includes(EX.code.trim()));
  assert.match(p.messages[1].content, /Reply with one ```js code block\.$/);
});

test('deterministic for the same inputs', () => {
  const inp = { apiReference: API, example: EX, inspirations: [{ code: prog(1), score: 0.5 }, { code: prog(2), score: 0.7 }], failures: [{ code: prog(3), error: 'TypeError: x' }] };
  assert.deepEqual(buildPrompt(inp), buildPrompt(structuredClone(inp)));
});

test('inspirations: the best k by score, shown ascending (best last), scores printed', () => {
  const insp = [0.41, 0.73, 0.12, 0.73, 0.6].map((score, i) => ({ code: prog(i), score, name: `p${i}` }));
  const p = buildPrompt({ apiReference: API, example: EX, inspirations: insp, limits: { maxInspirations: 3 } });
  const shown = [...p.text.matchAll(/### (p\d), score ([\d.]+)/g)].map((m) => `${m[1]}:${m[2]}`);
  assert.deepEqual(shown, ['p4:0.6', 'p3:0.73', 'p1:0.73']); // ties keep input order among the best
  assert.ok(!p.text.includes('mul(2)') && !p.text.includes('mul(0)'));
  assert.match(p.text, /Write a new algorithm that scores higher than the ones above/);
});

test('failures: errors on one line and cut, programs cut with a marker', () => {
  const long = 'function merge(taskVectors, ctx) {\n' + '  let a = 1;\n'.repeat(500) + '}';
  const p = buildPrompt({
    apiReference: API,
    example: EX,
    failures: [{ code: long, error: 'RangeError: shape mismatch\n    at merge (candidate.js:3)\n' + 'x'.repeat(2000) }, { code: prog(5), error: 'e2' }, { code: prog(6), error: 'e3' }],
    limits: { maxProgramChars: 200, maxErrorChars: 60, maxFailures: 2 },
  });
  const sec = p.text.slice(p.text.indexOf('## Earlier algorithms that failed'));
  assert.match(sec, /### error: RangeError: shape mismatch at merge \(candidate\.js:3\) …\n/);
  const errLine = sec.split('\n')[2];
  assert.ok(errLine.length <= '### error: '.length + 60 + 20, errLine);
  assert.match(sec, /\/\/ … \(truncated\)\n```/);
  assert.ok(sec.includes('e2') && !sec.includes('e3'));
});

test('history budget: failures dropped first, then the weakest inspiration', () => {
  const big = (k: number) => `function merge(taskVectors, ctx) {\n  // ${'z'.repeat(900)}\n  return taskVectors[0].mul(${k});\n}`;
  const insp = [{ code: big(1), score: 1 }, { code: big(2), score: 2 }];
  const fails = [{ code: big(3), error: 'bad' }];
  const p = buildPrompt({ apiReference: API, example: EX, inspirations: insp, failures: fails, limits: { maxHistoryChars: 2500 } });
  assert.ok(!p.text.includes('failed'));
  assert.ok(p.text.includes('mul(1)') && p.text.includes('mul(2)'));
  const q = buildPrompt({ apiReference: API, example: EX, inspirations: insp, failures: fails, limits: { maxHistoryChars: 1200 } });
  assert.ok(q.text.includes('mul(2)') && !q.text.includes('mul(1)'));
  const r = buildPrompt({ apiReference: API, example: EX, inspirations: insp, failures: fails, limits: { maxHistoryChars: 10 } });
  assert.ok(!r.text.includes('Earlier'));
  assert.match(r.text, /scores higher than the example/);
});

test('code containing backticks gets a longer fence', () => {
  const code = 'function merge(taskVectors, ctx) {\n  ctx.log(`a ``` b`);\n  return taskVectors[0];\n}';
  const p = buildPrompt({ apiReference: API, example: { name: 'x.js', code } });
  assert.ok(p.text.includes('````js\n' + code + '\n````'));
});

test('bad inputs are rejected with specific messages', () => {
  assert.throws(() => buildPrompt({ apiReference: ' ', example: EX }), /API reference is empty/);
  assert.throws(() => buildPrompt({ apiReference: API, example: { name: 'a', code: '' } }), /example program is empty/);
  assert.throws(() => buildPrompt({ apiReference: API, example: EX, inspirations: [{ code: 'x', score: NaN }] }), /inspiration 0 has a non-finite score/);
  assert.throws(() => buildPrompt({ apiReference: API, example: EX, limits: { maxFailures: -1 } }), /limit maxFailures/);
});

test('loadPromptFiles reads the contract and an example, naming missing files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'factory-prompt-'));
  try {
    assert.throws(() => loadPromptFiles(dir, 'algorithms/a.js'), /cannot read the API reference .*algorithm-contract\.md: ENOENT/);
    mkdirSync(join(dir, 'docs'));
    mkdirSync(join(dir, 'algorithms'));
    writeFileSync(join(dir, CONTRACT_PATH), API);
    assert.throws(() => loadPromptFiles(dir, 'algorithms/a.js'), /cannot read the example algorithm .*a\.js/);
    writeFileSync(join(dir, 'algorithms/a.js'), 'const x = 1;');
    assert.throws(() => loadPromptFiles(dir, 'algorithms/a.js'), /does not define function merge/);
    writeFileSync(join(dir, 'algorithms/a.js'), EX.code);
    const f = loadPromptFiles(dir, 'algorithms/a.js');
    assert.equal(f.apiReference, API);
    assert.deepEqual(f.example, { name: 'a.js', code: EX.code });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the real contract and every example of this checkout build a bounded prompt', { skip: !existsSync(CONTRACT_PATH) || !existsSync('algorithms') }, () => {
  const files = readdirSync('algorithms').filter((f) => f.endsWith('.js')).sort();
  assert.ok(files.length > 0);
  for (const ex of files) {
    const f = loadPromptFiles('.', join('algorithms', ex));
    assert.ok(!f.example.code.includes('eslint'), `${ex}: lint directive line stripped`);
    const p = buildPrompt({ ...f, inspirations: files.slice(0, 5).map((g, i) => ({ code: loadPromptFiles('.', join('algorithms', g)).example.code, score: i / 10, name: g })), failures: [{ code: f.example.code, error: 'runtime: TypeError: x is not a function (at line 3:5)' }] });
    assert.ok(p.text.includes(f.example.code.trim()));
    assert.ok(p.text.includes('## Merge-algorithm contract'));
    assert.ok(p.text.endsWith(CODE_OPEN));
    assert.ok(p.text.length < f.apiReference.length + 14_000, `${ex}: prompt of ${p.text.length} chars`);
    assert.equal((p.text.match(/### .*score/g) ?? []).length, 3);
  }
});
