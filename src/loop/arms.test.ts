import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { generateProgram } from '../factory/index.ts';
import { Rng } from '../nn/index.ts';
import { Sandbox, validateAlgorithm, type MergeContext } from '../sandbox/index.ts';
import { applyMutation, blend, crossover, EvolutionSampler, makeOffspring, MUTATION_OPS, parses, perturbConstants, splitTopLevel, type Parent } from './arms.ts';

const human = readdirSync('algorithms').filter((f) => f.endsWith('.js')).sort().map((f) => readFileSync(`algorithms/${f}`, 'utf8'));
const pool: Parent[] = [...Array.from({ length: 12 }, (_, i) => generateProgram(100 + i).code), ...human].map((code, i) => ({ hash: `h${String(i).padStart(2, '0')}`, code, score: 1 - i / 40 }));
const prompt = { text: '', messages: [], prefix: '', stop: [] };

test('splitTopLevel finds the top-level functions and constants of every pool program', () => {
  for (const p of pool) {
    const items = splitTopLevel(p.code);
    assert.ok(items, 'balanced');
    assert.equal(items.filter((x) => x.kind === 'function' && x.name === 'merge').length, 1, p.code);
    // every top-level `function NAME(` / `const NAME =` at column 0 is found as an item
    for (const m of p.code.matchAll(/^function\s+(\w+)/gm)) assert.ok(items.some((x) => x.kind === 'function' && x.name === m[1]), m[1]);
    for (const m of p.code.matchAll(/^const\s+(\w+)\s*=/gm)) assert.ok(items.some((x) => x.kind === 'decl' && x.name === m[1]), m[1]);
    // nothing is lost: the items hold every non-space character of the program, in order
    assert.equal(items.map((x) => x.text).join('').replace(/\s+/g, ''), p.code.replace(/\s+/g, ''));
  }
  assert.equal(splitTopLevel('function merge(a) { return a;'), null);
});

test('perturbConstants changes numbers only, keeps fractions in (0, 1) and never touches loop indices', () => {
  const code = 'const DENSITY = 0.2;\nconst K = 3;\nfunction merge(tv, ctx) {\n  let s = tv[0];\n  for (let i = 1; i < tv.length; i++) s = s.add(tv[i]);\n  return s.mul(DENSITY * K).add(s.mul(1e-12));\n}\n';
  let changed = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const out = perturbConstants(code, new Rng(seed), 1.2)!;
    assert.equal(out.replace(/\d+(\.\d+)?(e-?\d+)?/g, 'N'), code.replace(/\d+(\.\d+)?(e-?\d+)?/g, 'N'), 'only numeric literals differ');
    assert.match(out, /for \(let i = 1; i < tv\.length; i\+\+\)/);
    assert.match(out, /tv\[0\]/);
    assert.match(out, /1e-12/);
    const d = Number(/DENSITY = ([\d.]+)/.exec(out)![1]);
    assert.ok(d > 0 && d < 1, `density ${d}`);
    if (out !== code) changed++;
  }
  assert.equal(changed, 200);
});

test('mutation operators are deterministic in the seed and their raw outputs parse (measured rate)', () => {
  const rates: Record<string, { applied: number; parsed: number }> = {};
  for (const op of MUTATION_OPS) {
    const r = { applied: 0, parsed: 0 };
    for (let i = 0; i < 150; i++) {
      const pickA = new Rng(i + 1);
      const a = pool[pickA.int(pool.length)]!.code;
      const b = pool[pickA.int(pool.length)]!.code;
      const out = applyMutation(op, a, b, new Rng(1000 + i), 1);
      assert.equal(applyMutation(op, a, b, new Rng(1000 + i), 1), out, `${op} is deterministic`);
      if (out === null) continue;
      r.applied++;
      if (parses(out)) r.parsed++;
    }
    rates[op] = r;
  }
  const total = Object.values(rates).reduce((s, r) => ({ applied: s.applied + r.applied, parsed: s.parsed + r.parsed }), { applied: 0, parsed: 0 });
  console.log(`# mutation parse rates: ${JSON.stringify(rates)}; overall ${total.parsed}/${total.applied}`);
  assert.ok(total.parsed / total.applied >= 0.95, `overall parse rate ${total.parsed}/${total.applied}`);
  for (const [op, r] of Object.entries(rates)) if (r.applied > 0) assert.ok(r.parsed / r.applied >= 0.9, `${op}: ${r.parsed}/${r.applied} parse`);
  // the operators that always have material apply to most parent pairs
  for (const op of ['constants', 'modifier-add', 'crossover', 'blend']) assert.ok(rates[op]!.applied >= 100, `${op} applied ${rates[op]!.applied}/150`);
});

test('crossover takes one parent\'s merge with the other\'s constants', () => {
  const a = 'const LAMBDA = 0.3;\n\nfunction merge(tv, ctx) {\n  return torch.stack(tv).sum(0).mul(LAMBDA);\n}\n';
  const b = 'const LAMBDA = 0.9;\nconst DENSITY = 0.5;\n\nfunction merge(tv, ctx) {\n  return torch.stack(tv.map((x) => x.mul(x.topk_mask(DENSITY)))).mean(0).mul(LAMBDA);\n}\n';
  const c = crossover(a, b)!;
  assert.ok(parses(c));
  assert.match(c, /const LAMBDA = 0\.3;/);
  assert.doesNotMatch(c, /LAMBDA = 0\.9/);
  assert.match(c, /const DENSITY = 0\.5;/);
  assert.ok(c.includes("x.mul(x.topk_mask(DENSITY)))).mean(0).mul(LAMBDA)"));
  assert.equal(c.match(/function merge/g)!.length, 1);
});

test('offspring are deterministic, distinct from their parents, and pass the sandbox cascade; blend computes w·A + (1 − w)·B', async () => {
  const a = makeOffspring(pool, new Rng(7), 1);
  assert.deepEqual(makeOffspring(pool, new Rng(7), 1), a);
  const s1 = await new EvolutionSampler(pool).sample(prompt, 6, { temperature: 1, seed: 42 });
  const s2 = await new EvolutionSampler(pool).sample(prompt, 6, { temperature: 1, seed: 42 });
  assert.deepEqual(s1.map((c) => c.code), s2.map((c) => c.code));
  const s3 = await new EvolutionSampler(pool).sample(prompt, 6, { temperature: 1, seed: 43 });
  assert.notDeepEqual(s1.map((c) => c.code), s3.map((c) => c.code));
  const big = await new EvolutionSampler(pool).sample(prompt, 40, { temperature: 1, seed: 44 });
  const distinct = new Set(big.map((c) => c.code!.trim())).size;
  console.log(`# distinct children in a batch of 40: ${distinct}`);
  assert.ok(distinct >= 38, `${distinct}/40 distinct`);
  const sb = new Sandbox();
  try {
    let pass = 0;
    const N = 24;
    const ops: string[] = [];
    const known = new Set(pool.map((p) => p.code.trim()));
    for (let i = 0; i < N; i++) {
      const child = makeOffspring(pool, new Rng(500 + i), 1);
      ops.push(child.op);
      assert.ok(!known.has(child.code.trim()), 'a child is not a copy of a parent');
      const v = await validateAlgorithm(child.code, { sandbox: sb, seed: i });
      if (v.ok) pass++;
    }
    console.log(`# evolution offspring passing the cascade: ${pass}/${N} (ops ${ops.join(',')})`);
    assert.ok(pass / N >= 0.8, `cascade pass rate ${pass}/${N}`);

    // blend: an independent reference from running both parents separately
    const pa = 'const L = 0.7;\nfunction merge(tv, ctx) {\n  return torch.stack(tv).sum(0).mul(L);\n}\n';
    const pb = 'function merge(tv, ctx) {\n  return tv[0].sign().mul(torch.stack(tv).abs().amax(0));\n}\n';
    const code = blend(pa, pb, new Rng(3))!;
    const w = Number(/\.mul\(([\d.]+)\)\.add/.exec(code)![1]);
    const rng = new Rng(9);
    const inputs = [0, 1, 2].map(() => Float32Array.from({ length: 12 }, () => rng.normal()));
    const ctx: MergeContext = { name: 'model.layers.0.mlp.up_proj.weight', layer: 0, numLayers: 1, kind: 'mlp', shape: [3, 4], numModels: 3, seed: 1 };
    const [rb, ra, rbl] = await Promise.all([sb.run(pb, inputs, ctx), sb.run(pa, inputs, ctx), sb.run(code, inputs, ctx)]);
    assert.ok(ra.ok && rb.ok && rbl.ok, `${ra.message ?? ''} ${rb.message ?? ''} ${rbl.message ?? ''}`);
    const wb = Number(/evoParentB1\(taskVectors, ctx\)\.mul\(([\d.]+)\)/.exec(code)![1]);
    for (let i = 0; i < 12; i++) assert.ok(Math.abs(rbl.result![i]! - (w * ra.result![i]! + wb * rb.result![i]!)) < 1e-5, `entry ${i}`);
    assert.ok(Math.abs(w + wb - 1) < 1e-9);
  } finally {
    sb.close();
  }
});
