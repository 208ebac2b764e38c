import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Sandbox } from './sandbox.ts';
import { AlgorithmRejected, computeStats, makeMergeFunction, validateAlgorithm } from './validate.ts';
import type { MergeContext, RunOutcome } from './types.ts';
import { syntheticLlama } from '../cli/check-algorithm.ts';

const sb = new Sandbox({ limits: { timeoutMs: 3000, wallMs: 10000 } });
after(() => sb.close());

const ALGS = 'algorithms';
const alg = (f: string): string => readFileSync(`${ALGS}/${f}`, 'utf8');
const ctx = (shape: number[], kind: MergeContext['kind'] = 'mlp', numModels = 3): MergeContext => ({ name: `model.layers.1.${kind}.x.weight`, layer: 1, numLayers: 4, kind, shape, numModels, seed: 11 });
const vec = (n: number, f: (i: number) => number): Float32Array => Float32Array.from({ length: n }, (_, i) => f(i));
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `index ${i}: ${a[i]} vs ${b[i]}`);
};
async function ok(r: Promise<RunOutcome>): Promise<Float32Array> {
  const o = await r;
  assert.equal(o.ok, true, `${o.category}: ${o.message}`);
  return o.result!;
}

// three task vectors of shape [3, 4]
const tv = [vec(12, (i) => Math.sin(i + 1) * 0.1), vec(12, (i) => Math.cos(2 * i) * 0.05), vec(12, (i) => ((i % 3) - 1) * 0.02)];

test('every human-designed algorithm passes the cascade (smoke), two also the real stage', async () => {
  const files = readdirSync(ALGS).filter((f) => f.endsWith('.js')).sort();
  assert.ok(files.length >= 12, `expected >= 12 algorithms, found ${files.length}`);
  for (const f of files) {
    const v = await validateAlgorithm(alg(f), { sandbox: sb });
    assert.equal(v.ok, true, `${f}: ${v.category} ${v.message}`);
  }
  const real = syntheticLlama(3, 3, 16, 32, 24, 2);
  for (const f of ['algorithm_a.js', 'cosine_weighted.js']) {
    const v = await validateAlgorithm(alg(f), { sandbox: sb, real });
    assert.equal(v.ok, true, `${f}: ${v.category} ${v.message}`);
    assert.equal(v.stage, 'real');
  }
});

test('algorithms compute what their formulas say', async () => {
  const [a, b, c] = tv as [Float32Array, Float32Array, Float32Array];
  // task arithmetic: 0.4 * sum
  close(await ok(sb.run(alg('task_arithmetic.js'), tv, ctx([3, 4]))), vec(12, (i) => 0.4 * (a[i]! + b[i]! + c[i]!)));
  // Algorithm A, K = 3: 1/4 tau1 + 1/4 m(tau2) + 1/2 m(tau3), m = row mean broadcast
  const rowMean = (x: Float32Array, i: number): number => {
    const r = Math.floor(i / 4);
    return (x[r * 4]! + x[r * 4 + 1]! + x[r * 4 + 2]! + x[r * 4 + 3]!) / 4;
  };
  close(await ok(sb.run(alg('algorithm_a.js'), tv, ctx([3, 4]))), vec(12, (i) => 0.25 * a[i]! + 0.25 * rowMean(b, i) + 0.5 * rowMean(c, i)));
  close(await ok(sb.run(alg('algorithm_a.js'), tv, ctx([3, 4], 'attention'))), new Float32Array(12));
  // 1-D: mean of all entries
  const m1 = (x: Float32Array): number => x.reduce((s, v) => s + v, 0) / x.length;
  close(await ok(sb.run(alg('algorithm_a.js'), tv, ctx([12]))), vec(12, (i) => 0.25 * a[i]! + 0.25 * m1(b) + 0.5 * m1(c)));
  // MLP-only: mean for mlp, zero elsewhere
  close(await ok(sb.run(alg('mlp_only.js'), tv, ctx([3, 4]))), vec(12, (i) => (a[i]! + b[i]! + c[i]!) / 3));
  close(await ok(sb.run(alg('mlp_only.js'), tv, ctx([3, 4], 'norm'))), new Float32Array(12));
  // TIES with density 0.2 on 12 entries -> k = 2 per task vector; elected sign; agreeing mean
  const trim = (x: Float32Array): Float32Array => {
    const order = [...x.keys()].sort((p, q) => Math.abs(x[q]!) - Math.abs(x[p]!) || p - q);
    const out = new Float32Array(12);
    for (const j of order.slice(0, 2)) out[j] = x[j]!;
    return out;
  };
  const tr = tv.map(trim);
  const ties = vec(12, (i) => {
    const s = tr.reduce((acc, t) => acc + t[i]!, 0) >= 0 ? 1 : -1;
    const agree = tr.filter((t) => Math.sign(t[i]!) === s);
    return agree.length ? agree.reduce((acc, t) => acc + t[i]!, 0) / agree.length : 0;
  });
  close(await ok(sb.run(alg('ties.js'), tv, ctx([3, 4]))), ties);
  // Model Stock: t = N c / (1 + (N-1) c), c = mean pairwise cosine (clamped at 0), times the mean
  const cos = (x: Float32Array, y: Float32Array): number => {
    let d = 0, nx = 0, ny = 0;
    for (let i = 0; i < x.length; i++) { d += x[i]! * y[i]!; nx += x[i]! ** 2; ny += y[i]! ** 2; }
    return d / Math.sqrt(nx * ny);
  };
  const cbar = Math.max(0, (cos(a, b) + cos(a, c) + cos(b, c)) / 3);
  const t = (3 * cbar) / (1 + 2 * cbar);
  close(await ok(sb.run(alg('model_stock.js'), tv, ctx([3, 4]))), vec(12, (i) => (t * (a[i]! + b[i]! + c[i]!)) / 3), 1e-4);
  // DARE is seeded: same seed same result, different seed different result
  const d1 = await ok(sb.run(alg('dare.js'), tv, ctx([3, 4])));
  assert.deepEqual(d1, await ok(sb.run(alg('dare.js'), tv, ctx([3, 4]))));
  assert.notDeepEqual(d1, await ok(sb.run(alg('dare.js'), tv, { ...ctx([3, 4]), seed: 12 })));
});

test('the example in docs/algorithm-contract.md passes the cascade', async () => {
  const doc = readFileSync('docs/algorithm-contract.md', 'utf8');
  const m = /## Example[^\n]*\n+```js\n([\s\S]*?)```/.exec(doc);
  assert.ok(m, 'the contract has an example');
  const v = await validateAlgorithm(m[1]!, { sandbox: sb });
  assert.equal(v.ok, true, `${v.category}: ${v.message}`);
});

test('cascade categories and actionable messages', async () => {
  const cases: Array<[string, string, RegExp]> = [
    ['function merge(tv) {\n  return tv[0].add(;\n}', 'syntax', /line 2:\d+/],
    ['function mrege(tv) { return tv[0] }', 'no-entry-point', /function merge\(taskVectors, ctx\)/],
    ['function merge(tv) { return tv[0].sum(0) }', 'bad-shape', /merge returned shape \[10\] for a tensor of shape \[6, 10\]/],
    ['function merge(tv) { return tv[0].div(tv[0].norm()) }', 'non-finite', /non-finite/],
    ['function merge(tv) { return tv[0].add(0.001) }', 'bad-return', /all-zero task vectors/],
    ['function merge(tv) { return tv[0].add(undefinedThing) }', 'runtime', /undefinedThing is not defined \(at line 1:\d+\)/],
    ['function merge(tv) { return torch.add(tv[0], [1, 2, 3]) }', 'runtime', /torch\.add: argument 2 must be a tensor or a number/],
    ['function merge(tv) { return torch.mul(tv[0], torch.ones([3])) }', 'runtime', /\[6, 10\] and \[3\] are not broadcastable/],
    ['function merge(tv) { return 1 }', 'bad-return', /merge returned a number/],
  ];
  for (const [src, cat, re] of cases) {
    const v = await validateAlgorithm(src, { sandbox: sb });
    assert.equal(v.ok, false, src);
    assert.equal(v.category, cat, `${src}: ${v.message}`);
    assert.match(v.message!, re);
  }
});

test('nondeterminism is detected (fake sandbox returning different bits)', async () => {
  let n = 0;
  const fake = {
    check: async (): Promise<RunOutcome> => ({ ok: true }),
    prepare: async (): Promise<RunOutcome> => ({ ok: false, category: 'no-entry-point', message: 'none' }),
    run: async (_s: string, inputs: Float32Array[]): Promise<RunOutcome> => ({ ok: true, result: inputs[0]!.map((x) => (inputs[0]!.some((v) => v !== 0) ? x + ++n * 1e-3 : 0)) }),
  };
  const v = await validateAlgorithm('function merge(tv) { return tv[0] }', { sandbox: fake });
  assert.equal(v.category, 'nondeterministic');
});

test('TypeScript sources are transpiled; TS syntax errors carry line:col', async () => {
  const ts = 'function merge(tv: Tensor[], ctx: { kind: string }): Tensor {\n  const w: number = 0.5;\n  return tv[0].mul(w);\n}\ninterface Tensor { mul(x: number): Tensor }';
  const v = await validateAlgorithm(ts, { sandbox: sb, language: 'ts' });
  assert.equal(v.ok, true, `${v.category}: ${v.message}`);
  const bad = await validateAlgorithm('function merge(tv: number[) { }', { sandbox: sb, language: 'ts' });
  assert.equal(bad.category, 'syntax');
  assert.match(bad.message!, /line 1:\d+/);
});

test('makeMergeFunction runs prepare once and passes its state; failures throw AlgorithmRejected', async () => {
  const { tensors } = syntheticLlama(5, 3, 8, 16, 12, 1);
  const stats = computeStats(tensors);
  const f = makeMergeFunction(alg('cosine_weighted.js'), sb, { stats });
  const t = tensors.find((x) => x.name.includes('up_proj'))!;
  const out = await f(t.taskVectors, { name: t.name, layer: 0, numLayers: 1, shape: t.shape, seed: 1 });
  const cosm = stats[t.name]!.cosine;
  const raw = cosm.map((row, i) => Math.max(0, row.reduce((s, v, j) => (j === i ? s : s + v), 0) / 2) + 0.1);
  const w = raw.map((r) => r / raw.reduce((s, v) => s + v, 0));
  close(out, vec(out.length, (i) => t.taskVectors.reduce((s, x, k) => s + w[k]! * x[i]!, 0)));
  const g = makeMergeFunction('function merge(tv) { return tv[0].sum() }', sb);
  await assert.rejects(g(t.taskVectors, { name: t.name, layer: 0, numLayers: 1, shape: t.shape, seed: 1 }), (e: unknown) => e instanceof AlgorithmRejected && e.category === 'bad-shape');
});

test('torch API surface inside the sandbox: methods, shapes, item, broadcasting', async () => {
  const src = `function merge(tv, ctx) {
    const x = tv[0];
    const checks = [
      x.shape.join() === '3,4', x.numel() === 12, x.dim() === 2, x.size(-1) === 4,
      x.sum(1, true).shape.join() === '3,1', x.mean().shape.length === 0,
      Math.abs(x.sum().item() - torch.sum(x).item()) < 1e-6,
      torch.stack(tv).shape.join() === '3,3,4', torch.cat(tv, 0).shape.join() === '9,4',
      x.reshape(4, 3).shape.join() === '4,3', x.view([-1]).shape.join() === '12', x.t().shape.join() === '4,3',
      torch.zeros(2, 3).shape.join() === '2,3', torch.tensor([[1, 2], [3, 4]]).sum().item() === 10,
      torch.where(torch.gt(x, 0), 1, 0).sum().item() >= 0, torch.is_tensor(x) && !torch.is_tensor({}),
      x.quantile(0.5).item() === torch.quantile(x, 0.5).item(), x.topk_mask(0.5).sum().item() === 6,
      String(x) === 'tensor(shape=[3, 4])',
    ];
    const failed = checks.map((c, i) => c ? -1 : i).filter((i) => i >= 0);
    if (failed.length) throw new Error('failed checks ' + failed.join());
    return x.sub(x.mean(-1, true)).add(x.mean(-1, true));
  }`;
  close(await ok(sb.run(src, tv, ctx([3, 4]))), tv[0]!);
});
