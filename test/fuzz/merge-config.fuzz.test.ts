/**
 * Fuzz family: merge configs (causes 2, 10, 11 of issue 20). For any mutation of a valid merge config
 * — method, models, weights (huge, tiny, negative, non-finite), density / gamma / epsilon / lambda / t,
 * filter lists and include/exclude patterns (regex or not), dtypes, allow_non_finite, unknown keys —
 * `selfdev merge` (a child with a heap cap and a timeout) exits 0 with a complete model folder whose
 * values are all finite unless non-finite values were allowed, or refuses with one line and leaves
 * nothing; the input models and the config are byte-identical afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { makeTempDir } from '../../src/io/testing.ts';
import { Checkpoint } from '../../src/io/checkpoint.ts';
import { checkTokenizerFile, configProblems } from '../../src/io/model-config.ts';
import { METHODS } from '../../src/merge/registry.ts';
import { describeCase, edgeNumber } from './arbitraries.ts';
import { assertCleanFailure, assertCleanOutcome, fuzzOptions, hashTree, leftovers, makeMergeModel, runCli } from './harness.ts';

const number = fc.oneof(
  { weight: 3, arbitrary: fc.double({ min: -2, max: 2, noNaN: true }) },
  { weight: 3, arbitrary: edgeNumber },
  { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Infinity, -Infinity, -3e38) },
);
const PATTERNS = ['mlp', 'self_attn', 'layers.0', 'layers.1', '*', '/[/', '/(/', '/layers\\.1\\./', '/^model\\.(norm|embed)/', '/x', 'nope', '/mlp/i', ''];
const pattern = fc.constantFrom(...PATTERNS);
const value = fc.oneof(
  { weight: 5, arbitrary: number },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(true, false, 'x', null, []) },
  { weight: 2, arbitrary: fc.array(number, { minLength: 1, maxLength: 3 }) },
  { weight: 2, arbitrary: fc.array(fc.record({ filter: pattern, value: number }, { requiredKeys: ['value'] }), { minLength: 1, maxLength: 3 }) },
);
const PARAMS = ['weight', 'density', 'gamma', 'epsilon', 'lambda', 'normalize', 'rescale', 't', 'scale', 'select_topk', 'max_iter', 'tol', 'bogus'];

test('fuzz merge configs: a complete finite model or one line and nothing left; inputs untouched', (t) => {
  const tmp = makeTempDir('selfdev-fuzz-merge-');
  const base = join(tmp.path, 'base');
  const m1 = join(tmp.path, 'm1');
  const m2 = join(tmp.path, 'm2');
  makeMergeModel(base, 1);
  makeMergeModel(m1, 2, base);
  makeMergeModel(m2, 3, base);
  const inputs = [base, m1, m2];
  const hashes = inputs.map(hashTree);
  const baseNames = (() => {
    const c = Checkpoint.open(base);
    try {
      return c.tensorNames().sort();
    } finally {
      c.close();
    }
  })();
  const folder = fc.constantFrom(base, m1, m2);
  const two = (p: Record<string, unknown>) => [{ model: m1, parameters: { ...p } }, { model: m2, parameters: { ...p } }];
  // valid configs, one per family of methods; the mutations below break or bend them
  const TEMPLATES: Array<Record<string, unknown>> = [
    { merge_method: 'linear', models: two({ weight: 1 }) },
    { merge_method: 'task_arithmetic', base_model: base, models: two({ weight: 0.5 }) },
    { merge_method: 'ties', base_model: base, models: two({ weight: 1, density: 0.5 }) },
    { merge_method: 'dare_ties', base_model: base, models: two({ weight: 1, density: 0.5 }) },
    { merge_method: 'dare_linear', base_model: base, models: two({ weight: 0.5, density: 0.7 }) },
    { merge_method: 'breadcrumbs', base_model: base, models: two({ weight: 0.5, density: 0.8 }) },
    { merge_method: 'della', base_model: base, models: two({ weight: 1, density: 0.5, epsilon: 0.1 }) },
    { merge_method: 'slerp', base_model: base, models: [m1], parameters: { t: 0.5 } },
    { merge_method: 'model_stock', base_model: base, models: [m1, m2] },
    { merge_method: 'sce', base_model: base, models: [m1, m2] },
    { merge_method: 'karcher', models: [m1, m2] },
    { merge_method: 'nearswap', base_model: base, models: [m1], parameters: { t: 0.001 } },
  ];
  type Edit = { what: string; apply: (c: Record<string, any>) => void };
  const edit: fc.Arbitrary<Edit> = fc.oneof(
    fc.tuple(fc.nat(2), fc.constantFrom(...PARAMS), value).map(([i, k, v]) => ({ what: `models[${i}].${k}=${describeCase(v)}`, apply: (c: Record<string, any>) => {
      const m = c.models[i % c.models.length];
      if (typeof m === 'object') m.parameters = { ...(m.parameters ?? {}), [k]: v };
    } })),
    fc.tuple(fc.constantFrom(...PARAMS), value).map(([k, v]) => ({ what: `parameters.${k}=${describeCase(v)}`, apply: (c: Record<string, any>) => void (c.parameters = { ...(c.parameters ?? {}), [k]: v }) })),
    fc.tuple(fc.constantFrom('include_tensors', 'exclude_tensors'), fc.array(pattern, { minLength: 1, maxLength: 2 })).map(([k, v]) => ({ what: `${k}=${describeCase(v)}`, apply: (c: Record<string, any>) => void (c[k] = v) })),
    fc.tuple(fc.constantFrom('dtype', 'out_dtype'), fc.constantFrom<unknown>('float32', 'bfloat16', 'float16', 'int8', 5)).map(([k, v]) => ({ what: `${k}=${describeCase(v)}`, apply: (c: Record<string, any>) => void (c[k] = v) })),
    fc.constantFrom<unknown>(true, false, 'yes').map((v) => ({ what: `allow_non_finite=${describeCase(v)}`, apply: (c: Record<string, any>) => void (c.allow_non_finite = v) })),
    fc.constantFrom<unknown>('base', m1, 'union', join(tmp.path, 'nowhere')).map((v) => ({ what: `tokenizer_source=${describeCase(v)}`, apply: (c: Record<string, any>) => void (c.tokenizer_source = v) })),
    fc.oneof(fc.constantFrom(...METHODS.keys()), fc.constantFrom('bogus', 'slices')).map((v) => ({ what: `merge_method=${v}`, apply: (c: Record<string, any>) => void (c.merge_method = v) })),
    fc.tuple(folder, fc.boolean()).map(([f, drop]) => ({ what: drop ? 'no base_model' : `base_model=${f}`, apply: (c: Record<string, any>) => void (drop ? delete c.base_model : (c.base_model = f)) })),
    fc.constant({ what: 'unknown key', apply: (c: Record<string, any>) => void (c.bogus_key = 1) }),
  );
  const config = fc.tuple(fc.constantFrom(...TEMPLATES), fc.array(edit, { maxLength: 3 })).map(([tpl, edits]) => {
    const c = structuredClone(tpl) as Record<string, any>;
    for (const e of edits) e.apply(c);
    return { cfg: c, what: edits.map((e) => e.what).join('; ') || '(template)' };
  });
  let n = 0;
  let ok = 0;
  try {
    fc.assert(
      fc.property(config, fc.boolean(), ({ cfg, what }, allowFlag) => {
        const file = join(tmp.path, `c${n}.yml`);
        const out = join(tmp.path, `out${n}`);
        n++;
        writeFileSync(file, YAML.stringify(cfg));
        const cfgHash = hashTree(file);
        const r = runCli(['merge', file, out, ...(allowFlag ? ['--allow-non-finite'] : [])], { heapMb: 256, timeoutMs: 90_000 });
        inputs.forEach((p, i) => assert.equal(hashTree(p), hashes[i], `input ${p} changed (${`${cfg.merge_method}: ${what}`})`));
        assert.equal(hashTree(file), cfgHash);
        if (!assertCleanOutcome(r)) {
          assert.deepEqual(leftovers(out), [], `left behind after a refusal (${`${cfg.merge_method}: ${what}`})`);
          return;
        }
        ok++;
        // a complete model: weights, a config.json that agrees with them, a valid tokenizer
        const c = Checkpoint.open(out);
        try {
          assert.deepEqual(c.tensorNames().sort(), baseNames);
          assert.ok(c.config, 'config.json written');
          assert.deepEqual(configProblems(c.config!, c), []);
          checkTokenizerFile(join(out, 'tokenizer.json'), { vocabSize: 259 });
          if (!allowFlag && cfg.allow_non_finite !== true) {
            for (const name of c.tensorNames()) assert.ok(c.readF32(name).every(Number.isFinite), `non-finite values written in ${name} (${`${cfg.merge_method}: ${what}`})`);
          }
        } finally {
          c.close();
        }
      }),
      fuzzOptions(14, 3),
    );
  } finally {
    t.diagnostic(`merge config cases: ${n}, merged: ${ok}, refused: ${n - ok}`);
    tmp.cleanup();
  }
});

test('fuzz merge configs: a refusal names the parameter and, for a range, states it', () => {
  // the message of a range refusal, checked on one fixed case per ranged parameter
  const tmp = makeTempDir('selfdev-fuzz-range-');
  try {
    const base = join(tmp.path, 'base');
    const m1 = join(tmp.path, 'm1');
    makeMergeModel(base, 1);
    makeMergeModel(m1, 2, base);
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['dare_linear', { weight: 1, density: 0 }, /'density' must be in \(0, 1\], got 0/],
      ['breadcrumbs_ties', { weight: 1, density: 0.5, gamma: -0.5 }, /'gamma' must be in \[0, 1\), got -0\.5/],
      ['della_linear', { weight: 1, density: 0.5, epsilon: 1 }, /'epsilon' must be in \[0, 1\), got 1/],
    ];
    for (const [method, p, re] of cases) {
      const file = join(tmp.path, `${method}.yml`);
      writeFileSync(file, YAML.stringify({ merge_method: method, base_model: base, models: [{ model: m1, parameters: p }] }));
      assertCleanFailure(runCli(['merge', file, join(tmp.path, `o-${method}`)]), re);
    }
  } finally {
    tmp.cleanup();
  }
});
