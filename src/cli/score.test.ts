import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'selfdev-score-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]) {
  return spawnSync(process.execPath, [bin, 'score', ...args], { encoding: 'utf8' });
}
function file(name: string, lines: string[]): string {
  const f = join(dir, name);
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

const LINES = [
  { completion: ' 16 - 3 - 4 = <<16-3-4=9>>9\n#### 9', answer: 'Janet sells 16 - 3 - 4 = <<16-3-4=9>>9.\n#### 9', family: 'a' }, // both right
  { completion: ' so the answer is 18.', answer: '18', family: 'a' }, // flexible only
  { completion: ' #### 18.00', answer: '#### 18', family: 'b' }, // wrong (string compare)
  { completion: ' #### 1,080\nQuestion: next #### 5', answer: 'x\n#### 1,080', family: 'b' }, // strict right, flexible sees 5 unless cut
];

test('selfdev score --json reports strict and flexible accuracy with counts and families', () => {
  const f = file('c.jsonl', LINES.map((l) => JSON.stringify(l)));
  const r = run([f, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.n, 4);
  assert.deepEqual(out.strict, { correct: 2, accuracy: 0.5 });
  assert.deepEqual(out.flexible, { correct: 2, accuracy: 0.5 });
  assert.deepEqual(out.families.b.strict, { correct: 1, accuracy: 0.5 });
  const cut = JSON.parse(run([f, '--json', '--cut']).stdout);
  assert.deepEqual(cut.flexible, { correct: 3, accuracy: 0.75 });
});

test('selfdev score prints a readable table; bare-number answers as JSON numbers work', () => {
  const f = file('n.jsonl', [JSON.stringify({ completion: '#### 7', answer: 7 }), JSON.stringify({ completion: 'it is 6', answer: 7 })]);
  const r = run([f]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /strict-match\s+1\/2\s+50\.00%/);
  assert.match(r.stdout, /flexible-extract\s+1\/2\s+50\.00%/);
});

test('selfdev score: malformed lines fail with file:line', () => {
  const cases: Array<[string[], RegExp]> = [
    [[JSON.stringify(LINES[0]), '{"completion": "x"'], /n?bad\.jsonl:2: invalid JSON/],
    [[JSON.stringify(LINES[0]), '{"completion": "x"}'], /bad\.jsonl:2: missing field "answer"/],
    [['{"answer": "1"}'], /bad\.jsonl:1: missing field "completion"/],
    [['{"completion": 1, "answer": "1"}'], /bad\.jsonl:1: field "completion" must be a string/],
    [['{"completion": "1", "answer": null}'], /bad\.jsonl:1: field "answer" must be a string or a number/],
  ];
  for (const [lines, re] of cases) {
    const r = run([file('bad.jsonl', lines)]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, re);
  }
  const u = run([]);
  assert.equal(u.status, 2);
  assert.match(u.stderr, /expected exactly one COMPLETIONS\.jsonl/);
  assert.equal(run([join(dir, 'nope.jsonl')]).status, 1);
  assert.match(run([file('v.jsonl', [JSON.stringify(LINES[0])]), '--variant', 'x']).stderr, /--variant must be/);
});
