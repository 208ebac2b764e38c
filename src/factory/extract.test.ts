import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extractProgram, findFences, stripCommentsAndStrings, definesMerge } from './extract.ts';
import { generateCorpus } from './corpus.ts';

const PROG = `function merge(taskVectors, ctx) {
  const out = taskVectors[0].clone();
  for (let i = 1; i < taskVectors.length; i++) out.add_(taskVectors[i]);
  return out.mul_(1 / taskVectors.length);
}`;

function ok(raw: string, expected: string, via?: string): void {
  const r = extractProgram(raw);
  assert.ok(r.code !== null, `expected code, got reason: ${r.code === null ? r.reason : ''}`);
  assert.equal(r.code, expected);
  if (via) assert.equal(r.via, via);
  assert.equal(r.parses, true);
}

test('chat answer with a ```javascript fence and prose before and after', () => {
  const raw = `Sure! Here's a merge algorithm that averages the task vectors:\n\n\`\`\`javascript\n${PROG}\n\`\`\`\n\nThis works because averaging reduces interference. Let me know if you'd like changes!`;
  ok(raw, PROG, 'fence');
});

test('fence languages: js, ts, plain, JavaScript with attributes, tildes', () => {
  for (const open of ['```js', '```ts', '```', '```JavaScript title="merge.js"', '~~~js', '````js']) {
    const close = open.startsWith('~') ? '~~~' : open.startsWith('````') ? '````' : '```';
    ok(`Answer:\n${open}\n${PROG}\n${close}\n`, PROG, 'fence');
  }
});

test('the first fence that defines merge wins, over an earlier usage example and a later variant', () => {
  const usage = '```js\nconst merged = merge(tvs, ctx);\nconsole.log(merged);\n```';
  const bash = '```bash\nnode run.js\n```';
  const second = PROG.replace('1 / taskVectors.length', '0.5');
  const raw = `Usage:\n${usage}\nRun with:\n${bash}\nImplementation:\n\`\`\`js\n${PROG}\n\`\`\`\nAlternative:\n\`\`\`js\n${second}\n\`\`\``;
  ok(raw, PROG, 'fence');
});

test('helpers in the same fence are kept; export keywords and module.exports are dropped', () => {
  const body = `// helper\nexport function norm(t) {\n  return t.norm();\n}\n\nexport default function merge(taskVectors, ctx) {\n  return taskVectors[0].mul(1 / norm(taskVectors[0]));\n}\nmodule.exports = { merge };`;
  const want = `// helper\nfunction norm(t) {\n  return t.norm();\n}\n\nfunction merge(taskVectors, ctx) {\n  return taskVectors[0].mul(1 / norm(taskVectors[0]));\n}`;
  ok('```js\n' + body + '\n```', want);
});

test('unterminated final fence (model ran out of tokens after the function)', () => {
  ok(`Here you go:\n\`\`\`js\n${PROG}\n`, PROG, 'unterminated-fence');
  // cut after the last complete top-level declaration: a half-written helper is dropped
  const raw = `\`\`\`js\n${PROG}\n\nfunction helper(x) {\n  const y = x.mul(`;
  ok(raw, PROG, 'unterminated-fence');
});

test('completion output: prefix + code, the model keeps talking after the closing fence', () => {
  const raw = '```js\n' + PROG + '\n```\n\n## Explanation\nThe function returns the mean.\n```js\nfunction merge(a){return a[0]}\n```';
  ok(raw, PROG, 'fence');
});

test('<think> blocks are stripped; code mentioned in the thought is not preferred', () => {
  const thought = '<think>\nMaybe function merge(taskVectors) { return taskVectors[0]; } would do... no, average instead.\n</think>\n';
  ok(`${thought}\`\`\`js\n${PROG}\n\`\`\``, PROG, 'fence');
  // an output that starts inside the thought (template opened <think>)
  ok(`I should average.\n\`\`\`js\nfunction merge(x){ return x[0] }\n\`\`\`\n</think>\n\n\`\`\`js\n${PROG}\n\`\`\``, PROG, 'fence');
  // code only inside the thought: used as a last resort
  const r = extractProgram(`<think>\n\`\`\`js\n${PROG}\n\`\`\`\n</think>\nI cannot answer.`);
  assert.equal(r.code, PROG);
  assert.equal(r.code !== null && r.via, 'think');
});

test('bare function without fences, prose before and after', () => {
  const raw = `Here is the algorithm.\n\n${PROG}\n\nIt takes the mean of all task vectors, which is a robust baseline.`;
  ok(raw, PROG, 'bare');
});

test('bare code with helpers and a comment block before merge', () => {
  const code = `/**\n * Norm-weighted sum.\n */\nconst EPS = 1e-8;\nfunction weight(t) {\n  return 1 / (t.norm() + EPS);\n}\n\nfunction merge(taskVectors, ctx) {\n  let acc = taskVectors[0].mul(weight(taskVectors[0]));\n  for (const t of taskVectors.slice(1)) acc = acc.add(t.mul(weight(t)));\n  return acc;\n}`;
  ok(`Okay, I will write it.\n${code}\nDone.`, code, 'bare');
});

test('prose on the same line as the definition', () => {
  ok(`Sure! ${PROG}\nHope this helps.`, PROG, 'bare');
});

test('braces, quotes and slashes inside strings, comments, templates and regexes do not confuse the cut', () => {
  const code = `function merge(taskVectors, ctx) {\n  // a } in a comment and a quote '\n  const s = "}}}" + '{' + \`\${taskVectors.length} {\`;\n  const re = /[}{]/g;\n  /* } */\n  ctx.log(s.replace(re, ''));\n  return taskVectors[0].div(2);\n}`;
  ok(`${code}\nThat's it: note the } above.`, code, 'bare');
});

test('arrow-function and const definitions count as merge', () => {
  const code = 'const merge = (taskVectors, ctx) => taskVectors[0].clone();';
  ok('```js\n' + code + '\n```', code);
  assert.equal(definesMerge('async function merge(a, b) {}'), true);
  assert.equal(definesMerge('let merge = function (a) { return a; };'), true);
});

test('no merge function: null with a specific reason', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty output/],
    ['   \n', /empty output/],
    ['I am sorry, I cannot help with that.', /no merge function found/],
    ['```python\ndef merge(task_vectors):\n    return sum(task_vectors)\n```', /no merge function in 1 code block/],
    ['```js\nfunction mergeModels(a) { return a; }\n```\n```js\nconst x = merge(a);\n```', /no merge function in 2 code blocks/],
    ['<think>\nlet me think about merge(...) calls\n</think>', /only a <think> block/],
    ['// function merge(taskVectors) is what you need\nconsole.log("merge")', /no merge function found/],
    ['obj.merge = function (a) { return a; }', /no merge function found/],
  ];
  for (const [raw, re] of cases) {
    const r = extractProgram(raw);
    assert.equal(r.code, null, `expected null for ${JSON.stringify(raw)}`);
    assert.match(r.code === null ? r.reason : '', re);
  }
});

test('code that does not parse is still returned, marked parses=false', () => {
  const r = extractProgram('```js\nfunction merge(taskVectors, ctx) {\n  return taskVectors[0].add(\n}\n```');
  assert.ok(r.code !== null);
  assert.equal(r.parses, false);
  assert.match(r.code, /function merge/);
});

test('CRLF line endings and an indented fence inside a list', () => {
  const raw = `1. Write this:\r\n   \`\`\`js\r\n   ${PROG.split('\n').join('\r\n   ')}\r\n   \`\`\`\r\n`;
  ok(raw, PROG, 'fence');
});

test('an opening fence glued to prose and a closing fence glued to code', () => {
  ok(`Here: \`\`\`js\n${PROG}\`\`\`\nbye`, PROG, 'fence');
});

test('findFences reports language and closure', () => {
  const f = findFences('a\n```js\nx\n```\n```\ny');
  assert.deepEqual(f, [{ lang: 'js', body: 'x', closed: true }, { lang: '', body: 'y', closed: false }]);
});

test('stripCommentsAndStrings keeps offsets and masks non-code', () => {
  const src = 'a = "x}" // c\nb = `t${c}t` /* d */ + /re}/';
  const s = stripCommentsAndStrings(src);
  assert.equal(s.length, src.length);
  assert.equal(s.includes('}'), false, s);
  assert.equal(s[src.indexOf('${c}') + 2], 'c', 'template substitutions are code');
  assert.ok(!s.includes('re'));
  assert.equal(s.split('\n').length, 2);
});

test('helpers defined in an earlier block are prepended when merge calls them', () => {
  const helper = 'function unit(t) {\n  return t.div(t.norm().add(1e-8));\n}';
  const main = 'function merge(taskVectors, ctx) {\n  return unit(taskVectors[0]).mul(0.1);\n}';
  const raw = `First, a helper:\n\`\`\`js\n${helper}\n\`\`\`\nUsage elsewhere:\n\`\`\`js\nconsole.log(x);\n\`\`\`\nNow the merge:\n\`\`\`js\n${main}\n\`\`\``;
  ok(raw, `${helper}\n\n${main}`, 'fence');
  // a block with an unrelated function is not pulled in
  const other = '```js\nfunction plot(x) {\n  return x;\n}\n```\n```js\n' + PROG + '\n```';
  ok(other, PROG, 'fence');
});

test('chat-template tokens left in the text are removed', () => {
  ok(`<|im_start|>assistant\n\`\`\`js\n${PROG}\n\`\`\`<|im_end|>`, PROG, 'fence');
  ok(`${PROG}</s>`, PROG, 'bare');
});

test('a python block and a JavaScript block: the JavaScript merge is taken', () => {
  const raw = `In Python:\n\`\`\`python\ndef merge(task_vectors, ctx):\n    return sum(task_vectors)\n\`\`\`\nIn JavaScript:\n\`\`\`javascript\n${PROG}\n\`\`\``;
  ok(raw, PROG, 'fence');
});

test('completion that runs past the program into a new prompt section (no stop string)', () => {
  const raw = '```js\n' + PROG + '\n```\n\n## New algorithm\n\n```js\nfunction merge(taskVectors, ctx) {\n  return taskVectors[1';
  ok(raw, PROG, 'fence');
});

test('corpus programs survive every wrapping: chat prose, think blocks, bare, unterminated, CRLF, template tokens', () => {
  const wraps: Array<[string, (c: string) => string]> = [
    ['chat', (c) => `Sure! Here is an improved algorithm:\n\n\`\`\`javascript\n${c}\n\`\`\`\n\nIt should generalise better because it reduces interference.`],
    ['think', (c) => `<think>\nThe user wants a merge. Maybe function merge(taskVectors) { return taskVectors[0]; }? No.\n</think>\n\`\`\`js\n${c}\n\`\`\``],
    ['bare', (c) => `Here is my algorithm.\n\n${c}\n\nThis is the final answer.`],
    ['unterminated', (c) => `\`\`\`js\n${c}\n`],
    ['completion+rest', (c) => `\`\`\`js\n${c}\n\`\`\`\n\n## New algorithm\n\n\`\`\`js\nfunction merge(taskVectors, ctx) {\n  return taskVectors[`],
    ['crlf', (c) => `\`\`\`js\r\n${c.replaceAll('\n', '\r\n')}\r\n\`\`\`\r\n`],
    ['tokens', (c) => `<|im_start|>assistant\n\`\`\`js\n${c}\n\`\`\`<|im_end|>`],
  ];
  for (const p of generateCorpus(60, 123)) {
    const code = p.code.trimEnd();
    for (const [name, wrap] of wraps) {
      const r = extractProgram(wrap(code));
      assert.equal(r.code, code, `${name} / ${p.family}`);
      assert.equal(r.code !== null && r.parses, true);
    }
  }
});
