import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../nn/checkpoint.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { Tokenizer } from '../nn/tokenizer.ts';
import { decodeToF32 } from '../tensor/dtype.ts';
import { DEFAULT_RECIPE, RecipeError, ROLES, lineage, recipeHash, stageHashes, validateRecipe, withSeedOffset } from './recipe.ts';
import type { Recipe } from './recipe.ts';
import { distillCount, distillProblems, stepContextSpans, encodeProblem, formatProblem, stageProblems, taskVectorRatio, trainWorld } from './train-world.ts';
import type { WorldEvent } from './train-world.ts';
import { defaultBenchmarkKeys } from './bench.ts';
import { problemKey } from './problems.ts';

const tmp = mkdtempSync(join(tmpdir(), 'train-world-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const ft = { batch: 4, seqLen: 256, warmup: 2, minLrFrac: 0.1, weightDecay: 0 } as const;
function micro(m0Lr = 2e-3): Recipe {
  return {
    name: 'micro',
    model: { hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 64, maxPositions: 256 },
    dtype: 'BF16',
    evalSplits: [],
    stages: [
      { name: 'base', role: 'base', initFrom: null, steps: 12, ...ft, lr: 3e-3, weightDecay: 0.1, seed: 0, data: { mix: [{ family: 'bare', weight: 1 }, { family: 'lookup', weight: 1 }], format: 'pre' } },
      { name: 'M0', role: 'seed', initFrom: 'base', steps: 6, ...ft, lr: m0Lr, seed: 1, data: { mix: [{ family: 'addsub', weight: 1, hint: true }, { family: 'bare2', weight: 1 }] } },
      { name: 'E1', role: 'expert', initFrom: 'M0', steps: 5, ...ft, lr: 1e-3, seed: 2, data: { mix: [{ family: 'addsub', weight: 1 }] } },
      { name: 'X1', role: 'ood', initFrom: 'M0', steps: 4, ...ft, lr: 1e-3, seed: 3, data: { mix: [{ family: 'muldiv', weight: 1 }], loss: 'all' } },
    ],
  };
}

test('validateRecipe accepts the default recipe and rejects bad ones with specific messages', () => {
  validateRecipe(DEFAULT_RECIPE);
  const roles = DEFAULT_RECIPE.stages.map((s) => s.role);
  assert.ok(roles.filter((r) => r === 'expert').length >= 3 && roles.filter((r) => r === 'ood').length >= 2 && roles.includes('oracle') && roles.includes('seed'));
  const bad = (edit: (r: Recipe) => void, re: RegExp) => {
    const r = structuredClone(micro());
    edit(r);
    assert.throws(() => validateRecipe(r), (e: Error) => e instanceof RecipeError && re.test(e.message), re.source);
  };
  bad((r) => (r.stages[2].data.mix[0].family = 'algebra' as never), /stage 'E1': unknown family 'algebra'/);
  bad((r) => (r.stages[0].initFrom = 'E1'), /cycle in initFrom: base -> E1 -> M0 -> base/);
  bad((r) => (r.stages[1].lr = -1), /stage 'M0': lr must be in \(0, 1\)/);
  bad((r) => (r.stages[1].steps = 2.5), /stage 'M0': steps must be a positive integer/);
  bad((r) => (r.stages[1].warmup = 99), /stage 'M0': warmup must be an integer in \[0, steps=6\]/);
  bad((r) => (r.stages[2].initFrom = 'base'), /stage 'E1': an expert must be fine-tuned from the seed model/);
  bad((r) => (r.stages[2].initFrom = 'nope'), /stage 'E1': initFrom 'nope' is not a stage/);
  bad((r) => r.stages.push(structuredClone(r.stages[2])), /stage 'E1' is defined twice/);
  bad((r) => (r.stages[1].initFrom = null), /only a base stage may start from random weights/);
  bad((r) => (r.stages[3].seqLen = 512), /stage 'X1': seqLen 512 exceeds model.maxPositions 256/);
  bad((r) => (r.model.heads = 3), /model.hidden \(32\) must be a multiple of model.heads \(3\)/);
  bad((r) => (r.stages[2].data.mix[0].weight = 0), /weight of 'addsub' must be a positive number/);
  // an out-of-order initFrom (parent defined later) is rejected too
  bad((r) => r.stages.reverse(), /initFrom '.*' must come earlier/);
  bad((r) => (r.stages[2].trainable = ['mlp', 'ffn' as never]), /stage 'E1': trainable must be a non-empty list of tensor kinds/);
  bad((r) => (r.stages[2].trainable = []), /stage 'E1': trainable must be a non-empty list/);
  bad((r) => (r.stages[2].data.distill = { families: ['muldiv'], share: 1 }), /stage 'E1': data.distill.share must be in \(0, 1\)/);
  bad((r) => (r.stages[2].data.distill = { families: ['algebra' as never], share: 0.5 }), /stage 'E1': unknown distill family 'algebra'/);
  bad((r) => (r.stages[0].data.distill = { families: ['muldiv'], share: 0.5 }), /stage 'base': data.distill needs a parent model/);
});

test('withSeedOffset moves the seeds of the chosen roles by 1000·k, and so their hashes', () => {
  const r = micro();
  assert.equal(withSeedOffset(r, 0), r);
  const e = withSeedOffset(r, 2, ['expert', 'ood']);
  assert.deepEqual(e.stages.map((s) => s.seed), [0, 1, 2002, 2003]);
  const a = stageHashes(r), b = stageHashes(e);
  assert.equal(a.get('M0'), b.get('M0'));
  assert.notEqual(a.get('E1'), b.get('E1'));
  assert.deepEqual(withSeedOffset(r, 1).stages.map((s) => s.seed), [1000, 1001, 1002, 1003]);
  assert.throws(() => withSeedOffset(r, -1), /non-negative integer/);
  assert.throws(() => withSeedOffset(r, 1, ['boss' as never]), /unknown role 'boss'/);
  assert.deepEqual([...ROLES].sort(), ['base', 'expert', 'ood', 'oracle', 'seed']);
});

test('self-distilled share: counts, the families in turn, benchmark-disjoint, deterministic', () => {
  const st = { ...micro().stages[2], steps: 5, batch: 4, data: { mix: [{ family: 'addsub' as const, weight: 1 }], distill: { families: ['muldiv' as const, 'units' as const], share: 0.5 } } };
  assert.equal(distillCount(st), 10);
  assert.equal(stageProblems(st).length, 10);
  const d = distillProblems(st);
  assert.deepEqual(d.map((p) => p.family), Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? 'muldiv' : 'units')));
  const keys = defaultBenchmarkKeys();
  for (const p of d) assert.ok(!keys.has(problemKey(p)) && !/\(use /.test(p.question));
  assert.deepEqual(distillProblems(st), d);
  assert.equal(distillProblems(micro().stages[2]).length, 0);
});

test('stage hashes cover ancestors: changing M0 changes its descendants, not the base', () => {
  const a = stageHashes(micro());
  const b = stageHashes(micro(1e-3));
  assert.equal(a.get('base'), b.get('base'));
  for (const n of ['M0', 'E1', 'X1']) assert.notEqual(a.get(n), b.get(n), n);
  // notes do not matter, key order does not matter
  const r = micro();
  r.stages[2].note = 'x';
  r.stages[2] = Object.fromEntries(Object.entries(r.stages[2]).reverse()) as never;
  assert.equal(stageHashes(r).get('E1'), a.get('E1'));
  // recipeHash(stage, ancestors) agrees with the whole-recipe hashes and checks the chain
  const m = micro();
  for (const s of m.stages) assert.equal(recipeHash(s, lineage(m, s.name).slice(0, -1), m), a.get(s.name), s.name);
  assert.throws(() => recipeHash(m.stages[2], [], m), /initFrom "M0" but the last ancestor is null/);
  assert.throws(() => recipeHash(m.stages[2], [m.stages[1]], m), /ancestor 'M0' has initFrom "base", expected null/);
});

test('stage data: fresh, benchmark-disjoint, hinted as asked, calculator outputs masked', () => {
  const st = micro().stages[1];
  const ps = stageProblems(st);
  assert.equal(ps.length, st.steps * st.batch);
  const keys = defaultBenchmarkKeys();
  for (const p of ps) assert.ok(!keys.has(problemKey({ ...p, question: p.question.replace(/ \(use [^)]*\)$/, '') })));
  assert.ok(ps.filter((p) => p.family === 'addsub').every((p) => / \(use [-+*/]\)$/.test(p.question)));
  assert.deepEqual(stageProblems(st), ps);
  const tok = new Tokenizer();
  const p = { question: 'What is 2 + 3?', answer: '2 + 3 = <<2+3=5>>5\n#### 5', family: 'bare' as const };
  const e = encodeProblem(tok, p);
  const text = `Question: ${p.question}\nAnswer: ${p.answer}`;
  assert.deepEqual(e.ids, [tok.bosId, ...tok.encode(text), tok.eosId]);
  // targets: the completion except the forced "5>>" after "<<2+3="
  const start = 1 + `Question: ${p.question}\nAnswer:`.length;
  const forced = text.indexOf('5>>') + 1;
  const expect = e.ids.map((_, i) => (i < start ? 0 : i >= forced && i < forced + 3 ? 0 : 1));
  assert.deepEqual(e.mask, expect);
  assert.ok(encodeProblem(tok, p, 'all').mask.slice(1, start).every((x) => x === 1));
});

test('pre-training format: Q:/A: with steps joined by ". " and a final answer sentence', () => {
  const p = { question: 'Compute 9 / 3 + 4.', answer: '9 / 3 = <<9/3=3>>3\n3 + 4 = <<3+4=7>>7\n#### 7', family: 'bare2' as const };
  assert.deepEqual(formatProblem(p, 'pre'), { prompt: 'Q: Compute 9 / 3 + 4.\nA:', completion: ' 9 / 3 = <<9/3=3>>3. 3 + 4 = <<3+4=7>>7. So the answer is 7.' });
  const l = { question: 'Adam has 74 pens and 3 cups. How many pens does Adam have?', answer: 'Adam has 74 pens.\n#### 74', family: 'lookup' as const };
  assert.equal(formatProblem(l, 'pre').completion, ' Adam has 74 pens. So the answer is 74.');
  const e = encodeProblem(new Tokenizer(), p, 'completion', 'pre');
  assert.equal(e.mask.reduce((a, b) => a + b, 0), formatProblem(p, 'pre').completion.length + 1 - 6); // + eos, − the forced "3>>" and "7>>"
});

test('taskVectorRatio is the relative L2 distance (all and MLP tensors)', () => {
  const seed = new Map([['a.mlp.up', new Float32Array([3, 4])], ['b.attn', new Float32Array([0, 5])]]);
  const model = new Map([['a.mlp.up', new Float32Array([3, 5])], ['b.attn', new Float32Array([2, 5])]]);
  const r = taskVectorRatio(model, seed);
  assert.ok(Math.abs(r.all - Math.sqrt(5 / 50)) < 1e-12);
  assert.ok(Math.abs(r.mlp - Math.sqrt(1 / 25)) < 1e-12);
});

test('trainWorld: HF folders with cards, caching, retraining of dependants, byte-identical reruns', async () => {
  const a = join(tmp, 'a');
  const events: WorldEvent[] = [];
  const r1 = await trainWorld(micro(), a, { onProgress: (e) => events.push(e) });
  assert.deepEqual(r1.map((r) => [r.name, r.cached]), [['base', false], ['M0', false], ['E1', false], ['X1', false]]);
  assert.equal(events.filter((e) => e.kind === 'step').length, 12 + 6 + 5 + 4);
  for (const name of ['base', 'M0', 'E1', 'X1']) {
    const dir = join(a, name);
    const { model, tokenizer, config } = loadModel(dir);
    assert.equal(config.hidden_size, 32);
    assert.ok(tokenizer);
    model.dispose();
    const ck = Checkpoint.open(dir);
    assert.equal(ck.info('model.embed_tokens.weight').dtype, 'BF16');
    ck.close();
    const wj = JSON.parse(readFileSync(join(dir, 'world.json'), 'utf8'));
    assert.equal(wj.hash, stageHashes(micro()).get(name));
    const card = readFileSync(join(dir, 'README.md'), 'utf8');
    assert.match(card, new RegExp(`# ${name} `));
    assert.match(card, /Not yet measured/);
  }
  // τ ratio of E1 relative to M0, recomputed from the files
  const e1 = r1.find((r) => r.name === 'E1')!;
  const w = (n: string) => {
    const ck = Checkpoint.open(join(a, n));
    const m = new Map(ck.tensorNames().map((t) => [t, decodeToF32(ck.readBytes(t), ck.info(t).dtype)]));
    ck.close();
    return m;
  };
  const ref = taskVectorRatio(w('E1'), w('M0'));
  assert.ok(e1.tau && e1.tau.seed === 'M0' && e1.tau.all === ref.all && ref.all > 0);
  assert.match(readFileSync(join(a, 'E1', 'README.md'), 'utf8'), /‖τ‖\/‖M0‖ \| 0\.\d{4}/);
  assert.equal(r1.find((r) => r.name === 'M0')!.tau, undefined);

  // second run: everything cached
  const r2 = await trainWorld(micro(), a);
  assert.ok(r2.every((r) => r.cached));
  // a change in M0 retrains M0 and its dependants, not the base
  const r3 = await trainWorld(micro(1e-3), a);
  assert.deepEqual(r3.map((r) => [r.name, r.cached]), [['base', true], ['M0', false], ['E1', false], ['X1', false]]);
  // determinism: the same recipe into a fresh folder gives the same bytes
  const b = join(tmp, 'b');
  await trainWorld(micro(1e-3), b, { only: ['E1'] });
  assert.deepEqual(readdirSync(b).sort(), ['E1', 'M0', 'base']);
  for (const name of ['base', 'M0', 'E1']) {
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) {
      assert.ok(readFileSync(join(a, name, f)).equals(readFileSync(join(b, name, f))), `${name}/${f} differs`);
    }
  }
});

test('step targets: only the chosen step of a two-step story is a loss target', () => {
  const tok = new Tokenizer();
  const p = { question: 'Q?', answer: '5 * 12 = <<5*12=60>>60\n60 - 40 = <<60-40=20>>20\n#### 20', family: 'mix' as const };
  const completion = ` ${p.answer}`;
  assert.deepEqual(stepContextSpans(completion, 1), [[completion.indexOf('\n') + 1, completion.length]]);
  assert.deepEqual(stepContextSpans(completion, 2), [[0, completion.indexOf('\n') + 1]]);
  assert.throws(() => stepContextSpans(' 1 + 2 = <<1+2=3>>3\n#### 3', 1), /fewer than two steps/);
  const targets = (step?: 1 | 2) => {
    const e = encodeProblem(tok, { ...p, step }, 'completion', 'gsm');
    return tok.decode(e.ids.filter((_, i) => e.mask[i] === 1 && e.ids[i] !== tok.eosId));
  };
  // calculator outputs (`60>>`) are never targets; the copied result after them is
  assert.equal(targets(), ' 5 * 12 = <<5*12=60\n60 - 40 = <<60-40=20\n#### 20');
  assert.equal(targets(1), ' 5 * 12 = <<5*12=60\n');
  assert.equal(targets(2), '60 - 40 = <<60-40=20\n#### 20');
  // the ids are the same whatever the step: only the mask differs
  assert.deepEqual(encodeProblem(tok, { ...p, step: 1 }).ids, encodeProblem(tok, p).ids);
  const r = micro();
  r.stages[2].data.mix = [{ family: 'addsub', weight: 1, step: 1 }];
  assert.throws(() => validateRecipe(r), /only two-step families have steps/);
  r.stages[2].data.mix = [{ family: 'mix', weight: 1, step: 2, hint: true }];
  assert.throws(() => validateRecipe(r), /both hint and step/);
  r.stages[2].data.mix = [{ family: 'mix', weight: 1, step: 2 }];
  validateRecipe(r);
  assert.ok(stageProblems(r.stages[2]).every((q) => q.step === 2 && q.family === 'mix'));
});

test('trainWorld: a trainable-MLP stage with a self-distilled share changes only MLP tensors, deterministically', async () => {
  const r = micro();
  r.stages[2] = { ...r.stages[2], trainable: ['mlp'], data: { mix: [{ family: 'addsub', weight: 1 }], distill: { families: ['muldiv'], share: 0.5 } } };
  const dirs = [join(tmp, 'd1'), join(tmp, 'd2')];
  for (const d of dirs) await trainWorld(r, d, { only: ['E1'] });
  const w = (d: string, n: string) => {
    const ck = Checkpoint.open(join(d, n));
    const m = new Map(ck.tensorNames().map((t) => [t, decodeToF32(ck.readBytes(t), ck.info(t).dtype)]));
    ck.close();
    return m;
  };
  const e1 = w(dirs[0], 'E1'), m0 = w(dirs[0], 'M0');
  let mlpMoved = false;
  for (const [n, x] of m0) {
    const same = x.every((v, i) => v === e1.get(n)![i]);
    if (n.includes('.mlp.')) mlpMoved ||= !same;
    else assert.ok(same, `${n} changed although only MLP tensors train`);
  }
  assert.ok(mlpMoved);
  assert.ok(readFileSync(join(dirs[0], 'E1', 'model.safetensors')).equals(readFileSync(join(dirs[1], 'E1', 'model.safetensors'))));
  const res = JSON.parse(readFileSync(join(dirs[0], 'E1', 'world.json'), 'utf8'));
  assert.ok(res.result.tau.all > 0 && Math.abs(res.result.tau.all - taskVectorRatio(e1, m0).all) < 1e-12);
});

test('trainWorld evaluates on the benchmark when asked and records it in the card', async () => {
  const r = micro();
  r.stages = r.stages.slice(0, 1);
  r.stages[0].steps = 2;
  r.stages[0].maxFinalLoss = 0.01;
  const first = await trainWorld(r, join(tmp, 'c'));
  assert.deepEqual(first[0].eval, {});
  assert.deepEqual(first[0].lossCheck, { max: 0.01, ok: false });
  assert.match(readFileSync(join(tmp, 'c', 'base', 'README.md'), 'utf8'), /WARNING: final loss \d\.\d{4} is above this stage's bound 0\.01/);
  assert.deepEqual(first[0].lossCurve.map((x) => x[0]), [1, 2]);
  const reps = await trainWorld(r, join(tmp, 'c'), { evalSplits: ['dev'], evalLimit: 8, evalCached: true });
  assert.equal(reps[0].cached, true);
  const dev = reps[0].eval.dev!;
  assert.equal(dev.n, 8);
  assert.ok(dev.strict >= 0 && dev.strict <= 1);
  assert.match(readFileSync(join(tmp, 'c', 'base', 'README.md'), 'utf8'), /\| dev \| 8 \| \d+\.\d \/ \d+\.\d \|/);
  assert.equal(JSON.parse(readFileSync(join(tmp, 'c', 'base', 'world.json'), 'utf8')).result.eval.dev.n, 8);
});
