import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { FAMILIES, generateCorpus, generateProgram, trainingExample, writeCorpusJsonl } from './corpus.ts';
import { extractProgram } from './extract.ts';
import { CODE_CLOSE, PROGRAM_HEADER } from './prompt.ts';
import { Sandbox } from '../sandbox/sandbox.ts';
import { validateAlgorithm } from '../sandbox/validate.ts';
import { Rng } from '../nn/rng.ts';

const corpus = generateCorpus(1200, 7);

test('every generated program parses and defines function merge (compiled only, never run here)', () => {
  for (const [i, p] of corpus.entries()) {
    assert.doesNotThrow(() => new Script(p.code, { filename: `corpus-${i}.js` }), `program ${i} (${p.family}) does not parse:\n${p.code}`);
    assert.match(p.code, /^function merge\(taskVectors, ctx\) \{$/m);
    assert.ok(!/\b(require|import|eval|Function|process|globalThis)\b/.test(p.code), `program ${i} uses a forbidden name`);
  }
});

test('one consistent style: doc header, 2-space indent, semicolons, single quotes, no tabs or trailing spaces', () => {
  for (const p of corpus) {
    assert.ok(p.code.startsWith('/**\n * '), p.code);
    assert.ok(p.code.endsWith('}\n'));
    assert.ok(!/\t|[ ]+$|"/m.test(p.code), p.code);
    for (const l of p.code.split('\n')) assert.equal((l.match(/^ */)![0].length - (l.startsWith(' *') ? 1 : 0)) % 2, 0, `odd indent: ${JSON.stringify(l)}`);
  }
});

test('deterministic per seed; families balanced; many distinct variants; modifiers used', () => {
  assert.deepEqual(generateCorpus(50, 7), corpus.slice(0, 50));
  assert.notDeepEqual(generateCorpus(50, 8).map((p) => p.code), corpus.slice(0, 50).map((p) => p.code));
  assert.equal(new Set(corpus.map((p) => p.code)).size, corpus.length, 'all programs distinct');
  for (const f of FAMILIES) {
    const of = corpus.filter((p) => p.family === f);
    assert.equal(of.length, 100, f);
    // variants differ in more than names: distinct programs after renaming identifiers away
    const skeletons = new Set(of.map((p) => p.code.replace(/\/\/.*$|\/\*\*[\s\S]*?\*\//gm, '').replace(/\b[A-Za-z_]\w*\b/g, 'id')));
    assert.ok(skeletons.size >= 10, `${f}: only ${skeletons.size} structural variants`);
  }
  const mods = new Set(corpus.flatMap((p) => p.modifiers));
  assert.deepEqual([...mods].sort(), ['clamp', 'kind_scale', 'layer_schedule', 'mlp_only', 'norm_match', 'prepare_agreement', 'row_shift']);
  assert.ok(corpus.some((p) => p.family === 'ties' && p.modifiers.includes('layer_schedule')), 'combinations such as TIES then a layer schedule');
  assert.throws(() => generateProgram(1, 'nope' as never), /unknown family "nope"/);
});

test('training examples: header + program + closing fence, and the extractor recovers the program', () => {
  for (const p of corpus.slice(0, 60)) {
    const ex = trainingExample(p.code);
    assert.equal(ex.prompt, PROGRAM_HEADER);
    assert.ok(ex.completion.endsWith(CODE_CLOSE));
    const r = extractProgram(ex.prompt + ex.completion);
    assert.equal(r.code, p.code.trimEnd());
  }
});

const tmp = mkdtempSync(join(tmpdir(), 'factory-corpus-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('writeCorpusJsonl writes {prompt, completion, family, modifiers} lines', () => {
  const path = join(tmp, 'sub', 'corpus.jsonl');
  const r = writeCorpusJsonl(path, 30, 3);
  assert.deepEqual(r, { programs: 30, distinct: 30 });
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 30);
  const want = generateCorpus(30, 3);
  lines.forEach((l, i) => {
    assert.deepEqual(l, { ...trainingExample(want[i].code), family: want[i].family, modifiers: want[i].modifiers });
  });
});

test('a random sample of the corpus passes the sandbox validation cascade', async () => {
  const sb = new Sandbox();
  try {
    const rng = new Rng(99);
    // four programs of every family, chosen at random
    const sample = FAMILIES.flatMap((f) => {
      const of = corpus.filter((p) => p.family === f);
      return Array.from({ length: 4 }, () => of[rng.int(of.length)]);
    });
    // and a few with the optional prepare(stats) entry point
    sample.push(...corpus.filter((p) => p.modifiers.includes('prepare_agreement')).slice(0, 3));
    assert.equal(sample.length, FAMILIES.length * 4 + 3);
    for (const p of sample) {
      const v = await validateAlgorithm(p.code, { sandbox: sb, seed: 5 });
      assert.ok(v.ok, `${p.family} [${p.modifiers}] rejected at ${v.stage}: ${v.category}: ${v.message}\n${p.code}`);
      assert.equal(v.hasPrepare, p.modifiers.includes('prepare_agreement'));
    }
  } finally {
    await sb.close();
  }
});
