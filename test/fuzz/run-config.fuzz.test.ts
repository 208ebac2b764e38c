/**
 * Fuzz family: loop run configs (causes 6, 7, 9 of issue 20). For any mutation of a valid run config
 * — wrong types, out-of-range values, unknown keys, missing or wrong paths, bad tensor filters —
 * `selfdev run CONFIG --check` (a child with a heap cap and a timeout) says "config OK" exactly when
 * the config passes resolveConfig and checkRunPaths in process, else refuses with one line; and a
 * refused config refused by `selfdev run CONFIG --out DIR` too, before DIR or its run.sqlite exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { makeTempDir } from '../../src/io/testing.ts';
import { resolveConfig } from '../../src/loop/config.ts';
import { checkRunPaths } from '../../src/loop/run-paths.ts';
import { DELETE, describeCase, fieldValue } from './arbitraries.ts';
import { REPO, assertCleanFailure, assertSuccess, fuzzOptions, makeMergeModel, makeRunWorld, runCli } from './harness.ts';

const PATHS = [
  'name', 'seed', 'iterations', 'samplesPerIteration', 'workers', 'tensorFilter', 'failedAsRejected', 'arm', 'pWin', 'carryTopK', 'recursive', 'unknownKey',
  'temperature.t1', 'temperature.decay', 'eval.devSubset', 'eval.maxTokens', 'eval.calculator', 'eval.batchSize', 'eval.promoteTopFraction',
  'dpo.beta', 'dpo.lr', 'dpo.epochs', 'dpo.maxLen', 'dpo.nllAlpha', 'dpo.lossType', 'dpo.command', 'factory.kind', 'factory.dir', 'factory.maxTokens',
  'world.seedModel', 'world.experts', 'world.oodExperts', 'world.dev', 'world.test', 'world.select', 'world.algorithms', 'world.example', 'baselines.lambdas',
];

/** A valid config over a fixture world, and the values (right, wrong or missing paths included) its fields get. */
function arbitraries(world: ReturnType<typeof makeRunWorld>, other: string) {
  const valid = {
    name: 'fuzz', seed: 0, iterations: 1, samplesPerIteration: 2, workers: 1, tensorFilter: 'mlp',
    temperature: { t1: 1.2, decay: 0.2 }, failedAsRejected: false,
    eval: { devSubset: 10, maxTokens: 32, calculator: true },
    dpo: { beta: 0.1, lr: 1e-4, epochs: 1, maxLen: 400 },
    factory: { kind: 'corpus' },
    world: { ...world },
  };
  const nope = join(other, 'nope');
  const special = fc.oneof(
    fc.constantFrom('all', 'mlp,attention', 're:mlp', 're:[', 'mlp,nonsense', 'builtin', 'corpus', 'ipo', 'dpo', 'evolution'),
    fc.constantFrom(world.seedModel, world.experts[0]!, other, nope, world.dev, join(other, 'nope.jsonl'), 'algorithms', 'algorithms/ties.js', 'README.md', '/dev/null'),
    fc.array(fc.constantFrom<unknown>(world.experts[1]!, nope, world.dev, other, 5), { maxLength: 2 }),
  );
  return { valid, value: fc.oneof({ weight: 3, arbitrary: fieldValue }, { weight: 2, arbitrary: special }) };
}

function setPath(obj: Record<string, any>, path: string, v: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null || Array.isArray(o[k])) o[k] = {};
    o = o[k];
  }
  const last = keys[keys.length - 1]!;
  if (v === DELETE) delete o[last];
  else o[last] = v;
}

test('fuzz run configs: --check agrees with the checks in process; a refused config never creates the run folder', async (t) => {
  const tmp = makeTempDir('selfdev-fuzz-run-');
  const world = makeRunWorld(join(tmp.path, 'world'));
  // a model of another architecture (2 layers, hidden 16)
  const other = join(tmp.path, 'other');
  makeMergeModel(other, 9);
  const { valid, value } = arbitraries(world, other);
  let n = 0;
  let accepted = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom(...PATHS), value), { maxLength: 2 }), async (edits) => {
        const cfg = structuredClone(valid) as Record<string, any>;
        for (const [p, v] of edits) setPath(cfg, p, v);
        const file = join(tmp.path, `run${n}.yml`);
        const out = join(tmp.path, `out${n}`);
        n++;
        writeFileSync(file, YAML.stringify(cfg));
        let verdict: string | null = null;
        try {
          await checkRunPaths(resolveConfig(YAML.parse(YAML.stringify(cfg)), file), REPO, file);
        } catch (e) {
          verdict = (e as Error).message;
        }
        const r = runCli(['run', file, '--check'], { heapMb: 256, timeoutMs: 60_000 });
        if (verdict === null) {
          accepted++;
          assertSuccess(r);
          assert.match(r.stdout, /config OK/);
          return;
        }
        const line = assertCleanFailure(r);
        assert.ok(line.includes(verdict.split('\n')[0]!), `--check and the in-process check disagree on ${describeCase(edits)}:\n${verdict}\n${line}`);
        const full = runCli(['run', file, '--out', out], { heapMb: 256, timeoutMs: 60_000 });
        assert.equal(assertCleanFailure(full), line);
        assert.equal(existsSync(out), false, `a refused config left ${out} behind`);
      }),
      fuzzOptions(10, 6),
    );
  } finally {
    t.diagnostic(`run config cases: ${n}, accepted: ${accepted}, refused: ${n - accepted}`);
    tmp.cleanup();
  }
});
