import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { initBackend, loadModel, saveModel } from '../nn/index.ts';
import { evaluate } from '../eval/evaluate.ts';
import { loadGsm8k } from '../eval/gsm8k.ts';
import { BuiltinBackend } from '../eval/backends.ts';
import { parseMergeConfig } from '../merge/config.ts';
import { runMerge } from '../merge/engine.ts';
import { loadWeights, mergeWeights, mergekitConfig } from '../merge/in-memory.ts';
import { DEFAULT_RECIPE } from './recipe.ts';
import { makeMicroWorld } from './testing.ts';
import { defaultGrid, discoverWorld, formatBaselines, runBaselines, type BaselineWorld, type Candidate } from './baselines.ts';
import { command } from '../cli/baselines.ts';
import { UsageError } from '../cli/command.ts';
import { captureConsole } from '../cli/testing.ts';

// one micro world for this file: random-init seed, 2 experts trained on disjoint problems, 1 OOD expert
const shared = makeTempDir('selfdev-baselines-');
const worldP = makeMicroWorld(join(shared.path, 'micro'), { nExperts: 2, nOod: 1, nDev: 6, nTest: 6, trainSteps: 30 });
process.on('exit', () => shared.cleanup());

const OPTS = { maxTokens: 24, batchSize: 16 } as const;

async function microBaselineWorld(): Promise<BaselineWorld> {
  const w = await worldP;
  return { seed: w.seedModel, experts: w.experts, ood: w.oodExperts, oracles: [], dev: w.dev, test: w.test };
}

/** A BF16 copy of the micro world (what the shipped world stores), in `dir`. */
async function bf16World(dir: string): Promise<BaselineWorld> {
  const w = await microBaselineWorld();
  const copy = (src: string, name: string) => {
    const m = loadModel(src);
    saveModel(join(dir, name), m.model, m.tokenizer, { dtype: 'BF16' });
    m.model.dispose();
    return join(dir, name);
  };
  return { ...w, seed: copy(w.seed, 'seed'), experts: w.experts.map((e, i) => copy(e, `e${i}`)), ood: w.ood.map((e, i) => copy(e, `x${i}`)) };
}

test('baselines: grid runs on the micro world, the config picked per family is its best by dev, test only for picked ones; rerun is all cache', async () => {
  await initBackend();
  const w = await microBaselineWorld();
  const grid: Candidate[] = defaultGrid(w, { quick: true });
  const cacheFile = join(shared.path, 'cache-a.json');
  const r = await runBaselines(w, { ...OPTS, grid, cacheFile });
  assert.equal(r.rows.length, grid.length);
  assert.equal(r.evaluations.cached, 2, 'M0 is scored once per split and reused for the OOD set (same cache key)');
  const groups = new Map<string, typeof r.rows>();
  for (const row of r.rows) groups.set(`${row.set}/${row.family}`, [...(groups.get(`${row.set}/${row.family}`) ?? []), row]);
  for (const [k, rows] of groups) {
    const sel = rows.filter((x) => x.selected);
    assert.equal(sel.length, 1, `${k}: exactly one selected`);
    const s = sel[0]!;
    const bestStrict = Math.max(...rows.map((x) => x.dev!.strict));
    assert.equal(s.dev!.strict, bestStrict, `${k}: selected has the best dev strict`);
    const tied = rows.filter((x) => x.dev!.strict === bestStrict);
    assert.equal(s.dev!.flexible, Math.max(...tied.map((x) => x.dev!.flexible)), `${k}: flexible breaks ties`);
    assert.equal(s, tied.find((x) => x.dev!.flexible === s.dev!.flexible), `${k}: then the earliest in grid order`);
    for (const x of rows) assert.equal(x.test !== null, x.selected, `${k} ${x.label}: test scored iff selected`);
  }
  // the two experts differ on dev (trained on disjoint problems): the score signal is real
  const ex = r.rows.filter((x) => x.set === 'in-domain' && x.family === 'expert');
  assert.ok(ex.some((x) => x.dev!.strict > 0), 'some expert answers some dev question');
  // an independent evaluation of expert 0 on dev gives the same score
  const m = loadModel(w.experts[0]!);
  const ind = await evaluate(BuiltinBackend.fromModel(m.model, m.tokenizer!, { batchSize: 16 }), loadGsm8k(w.dev), { maxTokens: OPTS.maxTokens, calculator: true });
  m.model.dispose();
  assert.equal(ex[0]!.dev!.strict, ind.strict);
  assert.equal(ex[0]!.dev!.flexible, ind.flexible);
  const table = formatBaselines(r);
  assert.match(table, /== in-domain experts ==/);
  assert.match(table, /== ood experts ==/);
  assert.match(table, /task_arithmetic +(\* | {2})lambda=/);
  assert.match(table, /headroom \(in-domain, test strict\): best TA − M0 = [+-]\d+\.\d pts/);
  // rerun: nothing recomputed, same numbers
  const r2 = await runBaselines(w, { ...OPTS, grid, cacheFile });
  assert.equal(r2.evaluations.computed, 0);
  assert.deepEqual(r2.rows.map((x) => [x.dev!.strict, x.test?.strict ?? null]), r.rows.map((x) => [x.dev!.strict, x.test?.strict ?? null]));
  const stored = JSON.parse(readFileSync(cacheFile, 'utf8')) as { report: { rows: unknown[] }; entries: Record<string, unknown> };
  assert.equal(stored.report.rows.length, grid.length);
  // two worker processes give the same scores (no cache)
  const r4 = await runBaselines(w, { ...OPTS, grid: grid.slice(0, 6), splits: ['dev'], jobs: 2 });
  assert.equal(r4.evaluations.computed, 6);
  assert.deepEqual(r4.rows.map((x) => [x.dev!.strict, x.dev!.flexible]), r.rows.slice(0, 6).map((x) => [x.dev!.strict, x.dev!.flexible]));
  // another seed changes only the random methods' keys (dare_*, della)
  const random = grid.filter((c) => c.method === 'dare_ties' || c.method === 'dare_linear' || c.method === 'della');
  const r3 = await runBaselines(w, { ...OPTS, grid, cacheFile, splits: ['dev'], seed: 7 });
  assert.equal(r3.evaluations.computed, random.length);
  assert.equal(r3.rows.every((x) => x.test === null), true);
});

test('baselines: in-memory merges equal `selfdev merge` output bit for bit (BF16 world, random and general-path methods)', async () => {
  const dir = join(shared.path, 'bf16');
  const w = await bf16World(dir);
  const cache = new Map<string, ReturnType<typeof loadWeights>>();
  const load = (d: string) => cache.get(d) ?? (cache.set(d, loadWeights(d)), cache.get(d)!);
  const cands: Candidate[] = [
    { set: 'in-domain', family: 'dare_ties', label: 'x', kind: 'merge', method: 'dare_ties', base: w.seed, models: w.experts, params: { lambda: 1.5 }, modelParams: { weight: 1, density: 0.5 } },
    { set: 'in-domain', family: 'model_stock', label: 'x', kind: 'merge', method: 'model_stock', base: w.seed, models: w.experts, params: {}, modelParams: {} },
  ];
  for (const [k, c] of cands.entries()) {
    for (const tensors of ['mlp', 'all']) {
      const mine = mergeWeights(c, load, tensors, 3);
      const cfg = mergekitConfig(c, load(w.seed).names, tensors);
      const out = join(dir, `out-${k}-${tensors}`);
      await runMerge(parseMergeConfig(cfg, dir), out, { seed: 3 });
      const theirs = loadWeights(out);
      assert.deepEqual([...mine.keys()].sort(), [...theirs.weights.keys()].sort());
      let changed = 0;
      for (const [n, a] of mine) {
        const b = theirs.weights.get(n)!;
        assert.deepEqual(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength), `${c.method} ${tensors}: tensor ${n} differs from the engine's`);
        if (a !== load(w.seed).weights.get(n)) changed++;
        if (tensors === 'mlp' && !n.includes('.mlp.')) assert.equal(a, load(w.seed).weights.get(n), `${n} is the base's`);
      }
      assert.ok(changed > 0);
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

test('baselines: bad input — missing world, untrained stages, unknown split, bad options', async () => {
  const tmp = join(shared.path, 'bad');
  mkdirSync(tmp, { recursive: true });
  assert.throws(() => discoverWorld(join(tmp, 'nope')), /world folder not found: .*nope; train it with `npm run world:train`/);
  // a folder of the default recipe with only some stages
  const w = await microBaselineWorld();
  const wdir = join(tmp, 'models');
  const stage = (name: string, role: string, src: string | null, recipe = DEFAULT_RECIPE.name) => {
    const d = join(wdir, name);
    if (src) cpSync(src, d, { recursive: true });
    else mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'world.json'), JSON.stringify({ recipe, stage: { name, role } }));
  };
  stage('M0', 'seed', w.seed);
  stage('E1_addsub', 'expert', w.experts[0]!);
  assert.throws(() => discoverWorld(wdir), /not fully trained; missing stage\(s\): E2_groups \(expert\), E3_units \(expert\), X1_gainsgroups \(ood\), X2_comparerates \(ood\), oracle \(oracle\), oracle_long \(oracle\)/);
  stage('E2_groups', 'expert', null);
  assert.throws(() => discoverWorld(wdir), /stage\(s\) without model.safetensors \(training not finished\?\): E2_groups/);
  rmSync(wdir, { recursive: true, force: true });
  stage('E1', 'expert', w.experts[0]!, 'custom');
  assert.throws(() => discoverWorld(wdir), /no trained model with role 'seed' \(M0\) \(found: E1:expert\)/);
  await assert.rejects(command.run(['--world', join(tmp, 'nope')]), (e: Error) => e instanceof UsageError && /world folder not found/.test(e.message));
  await assert.rejects(command.run(['--split', 'dev,valid']), (e: Error) => e instanceof UsageError && /unknown split 'valid'/.test(e.message));
  await assert.rejects(command.run(['--split', 'test']), /test needs dev too/);
  await assert.rejects(command.run(['--limit', '0']), /--limit must be an integer >= 1/);
  await assert.rejects(command.run(['--tensors', 'mlpp']), /--tensors: .*unknown kind 'mlpp'/);
  const bw = await microBaselineWorld();
  await assert.rejects(runBaselines(bw, { splits: ['test'] }), /test split needs dev/);
  await assert.rejects(runBaselines({ ...bw, dev: join(tmp, 'missing.jsonl') }, { grid: [] }), /benchmark file not found: .*missing\.jsonl/);
  await assert.rejects(runBaselines(bw, { grid: [{ set: 'in-domain', family: 'f', label: 'l', kind: 'merge', method: 'tiess', base: bw.seed, models: bw.experts }] }), /unknown merge method 'tiess'/);
});

test('baselines CLI: discovers roles from world.json, prints the table and JSON, caches in --out', async () => {
  const w = await microBaselineWorld();
  const root = join(shared.path, 'cliworld');
  const wdir = join(root, 'models');
  const put = (name: string, role: string, src: string) => {
    cpSync(src, join(wdir, name), { recursive: true });
    writeFileSync(join(wdir, name, 'world.json'), JSON.stringify({ recipe: 'micro', stage: { name, role } }));
  };
  put('M0', 'seed', w.seed);
  put('EA', 'expert', w.experts[0]!);
  put('EB', 'expert', w.experts[1]!);
  put('XA', 'ood', w.ood[0]!);
  put('OR', 'oracle', w.experts[1]!);
  mkdirSync(join(root, 'bench'));
  cpSync(w.dev, join(root, 'bench', 'dev.jsonl'));
  cpSync(w.test, join(root, 'bench', 'test.jsonl'));
  {
    const json = await captureConsole(() => command.run(['--world', wdir, '--quick', '--limit', '3', '--max-tokens', '16', '--json']));
    assert.equal(json.code, 0, json.err);
    const rep = JSON.parse(json.out) as { world: { seed: string; experts: string[]; ood: string[]; oracles: string[] }; settings: { devN: number }; rows: Array<{ family: string; models: string[] }>; headroom: Array<{ oracles: Record<string, number> }> };
    assert.deepEqual(rep.world, { seed: 'M0', experts: ['EA', 'EB'], ood: ['XA'], oracles: ['OR'] });
    assert.equal(rep.settings.devN, 3);
    assert.ok(rep.rows.some((r) => r.family === 'OR' && r.models[0] === 'OR'));
    assert.ok('OR' in rep.headroom[0]!.oracles);
    const again = await captureConsole(() => command.run(['--world', wdir, '--quick', '--limit', '3', '--max-tokens', '16']));
    assert.equal(again.code, 0, again.err);
    const text = again.out;
    assert.match(text, /0 evaluations computed, \d+ from the cache/);
    assert.match(text, /OR − best TA = [+-]\d/);
    assert.match(text, new RegExp(`results and cache: ${join(root, 'baselines.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  }
});

test('baselines: task_arithmetic merge = seed + λ Σ τ on the filtered tensors, seed elsewhere (formula reference)', async () => {
  // task_arithmetic with weight 1, lambda λ on F32 models = seed + λ Σ τ on the selected tensors
  const w = await microBaselineWorld();
  const load = (d: string) => loadWeights(d);
  const c: Candidate = { set: 'in-domain', family: 'task_arithmetic', label: 'l', kind: 'merge', method: 'task_arithmetic', base: w.seed, models: w.experts, params: { lambda: 0.4 }, modelParams: { weight: 1 } };
  const mine = mergeWeights(c, load, 'mlp');
  const s = load(w.seed).weights;
  const es = w.experts.map((e) => load(e).weights);
  for (const [n, a] of mine) {
    const b = s.get(n)!;
    for (let i = 0; i < a.length; i += 7) {
      const ref = n.includes('.mlp.') ? b[i]! + 0.4 * es.reduce((acc, e) => acc + (e.get(n)![i]! - b[i]!), 0) : b[i]!;
      assert.ok(Math.abs(a[i]! - ref) <= 1e-6 * Math.max(1, Math.abs(ref)), `${n}[${i}]: ${a[i]} vs ${ref}`);
    }
  }
});

test('baselines: default grid has the listed families and λ grid; the quick grid is a subset of it (cache carries over)', () => {
  const w: BaselineWorld = { seed: '/m/M0', experts: ['/m/E1', '/m/E2', '/m/E3'], ood: ['/m/X1', '/m/X2'], oracles: ['/m/oracle'], dev: '', test: '' };
  const id = (c: Candidate) => JSON.stringify([c.set, c.kind, c.model, c.method, c.base, c.models, c.params, c.modelParams]);
  const full = defaultGrid(w);
  const quick = defaultGrid(w, { quick: true });
  const fullIds = new Set(full.map(id));
  for (const c of quick) assert.ok(fullIds.has(id(c)), `quick config ${c.family} ${c.label} is in the full grid`);
  const fams = (set: string) => [...new Set(full.filter((c) => c.set === set).map((c) => c.family))];
  assert.deepEqual(fams('in-domain'), ['M0', 'expert', 'oracle', 'task_arithmetic', 'ties', 'dare_ties', 'dare_linear', 'breadcrumbs', 'della', 'model_stock', 'slerp']);
  assert.deepEqual(fams('ood'), ['M0', 'expert', 'task_arithmetic', 'ties', 'dare_ties', 'model_stock', 'slerp']);
  assert.deepEqual(full.filter((c) => c.set === 'in-domain' && c.family === 'task_arithmetic').map((c) => c.params!.lambda), [0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]);
  assert.equal(full.filter((c) => c.set === 'in-domain' && c.family === 'slerp').length, 3 * 3, '3 expert pairs × 3 t');
});
