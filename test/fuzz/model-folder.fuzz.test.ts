/**
 * Fuzz family: the files of a model folder (causes 3 and 12 of issue 20, and corrupt weights). The
 * base model's config.json, tokenizer files, generation config or weights are deleted, emptied,
 * truncated, overwritten with garbage, bit-flipped, replaced by a folder, a FIFO or a link to a
 * device. `selfdev merge` and `selfdev inspect` (children with a heap cap and a timeout) must then
 * finish promptly: merge with a complete model or one line and nothing left behind, inspect with
 * its report or one line; the folder is byte-identical afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { makeTempDir } from '../../src/io/testing.ts';
import { Checkpoint } from '../../src/io/checkpoint.ts';
import { checkTokenizerFile, configProblems } from '../../src/io/model-config.ts';
import { describeCase, jsonValue } from './arbitraries.ts';
import { assertCleanOutcome, fuzzOptions, hashTree, leftovers, makeMergeModel, runCli } from './harness.ts';

const FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'model.safetensors'];
const action = fc.oneof(
  fc.constant({ kind: 'delete' as const }),
  fc.constant({ kind: 'empty' as const }),
  fc.constant({ kind: 'folder' as const }),
  fc.constant({ kind: 'fifo' as const }),
  fc.constant({ kind: 'device' as const }),
  fc.double({ min: 0, max: 1, noNaN: true }).map((f) => ({ kind: 'truncate' as const, f })),
  fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }).map((flips) => ({ kind: 'flip' as const, flips })),
  fc.string({ maxLength: 30 }).map((text) => ({ kind: 'garbage' as const, text })),
  fc.tuple(fc.constantFrom('vocab_size', 'bos_token_id', 'eos_token_id', 'model', 'added_tokens', 'num_hidden_layers', 'x'), jsonValue).map(([key, v]) => ({ kind: 'json' as const, key, v })),
);

type Action = typeof action extends fc.Arbitrary<infer T> ? T : never;

function mutate(dir: string, file: string, a: Action): void {
  const p = join(dir, file);
  switch (a.kind) {
    case 'delete': rmSync(p, { force: true }); break;
    case 'empty': writeFileSync(p, ''); break;
    case 'folder': rmSync(p, { force: true }); mkdirSync(p); break;
    case 'fifo': rmSync(p, { force: true }); execFileSync('mkfifo', [p]); break;
    case 'device': rmSync(p, { force: true }); symlinkSync('/dev/zero', p); break;
    case 'truncate': { const b = readFileSync(p); writeFileSync(p, b.subarray(0, Math.floor(a.f * b.length))); break; }
    case 'flip': {
      const b = readFileSync(p);
      for (const [at, v] of a.flips) if (b.length > 0) b[Math.min(b.length - 1, Math.floor(at * b.length))] = v;
      writeFileSync(p, b);
      break;
    }
    case 'garbage': writeFileSync(p, a.text); break;
    case 'json': {
      let j: Record<string, unknown> | null;
      try {
        j = JSON.parse(readFileSync(p, 'utf8'));
      } catch {
        j = {};
      }
      if (typeof j === 'object' && j !== null && !Array.isArray(j)) j[a.key] = a.v;
      writeFileSync(p, JSON.stringify(j));
      break;
    }
  }
}

test('fuzz model folders: merge and inspect finish promptly with a complete model or one line; the folder is untouched', (t) => {
  const tmp = makeTempDir('selfdev-fuzz-folder-');
  const m1 = join(tmp.path, 'm1');
  const seed = join(tmp.path, 'seed');
  makeMergeModel(seed, 1);
  makeMergeModel(m1, 2, seed);
  const m1Hash = hashTree(m1);
  let n = 0;
  let merged = 0;
  try {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...FILES), action), { minLength: 1, maxLength: 2 }), (edits) => {
        const base = join(tmp.path, `base${n}`);
        const out = join(tmp.path, `out${n}`);
        const cfg = join(tmp.path, `c${n}.yml`);
        n++;
        execFileSync('cp', ['-r', seed, base]);
        for (const [file, a] of edits) {
          try {
            mutate(base, file, a);
          } catch {
            // e.g. truncating what an earlier edit turned into a FIFO
          }
        }
        const before = hashTree(base);
        writeFileSync(cfg, YAML.stringify({ merge_method: 'task_arithmetic', base_model: base, models: [{ model: m1, parameters: { weight: 0.5 } }] }));
        const r = runCli(['merge', cfg, out], { heapMb: 256, timeoutMs: 60_000 });
        assertCleanOutcome(runCli(['inspect', base], { heapMb: 256, timeoutMs: 60_000 }));
        assert.equal(hashTree(base), before, `the base folder changed (${describeCase(edits)})`);
        assert.equal(hashTree(m1), m1Hash);
        if (!assertCleanOutcome(r)) {
          assert.deepEqual(leftovers(out), [], describeCase(edits));
          return;
        }
        merged++;
        const c = Checkpoint.open(out);
        try {
          assert.ok(c.config, `no config.json in the output (${describeCase(edits)})`);
          assert.deepEqual(configProblems(c.config!, c), []);
          checkTokenizerFile(join(out, 'tokenizer.json'), { vocabSize: 259 });
          for (const name of c.tensorNames()) assert.ok(c.readF32(name).every(Number.isFinite), `non-finite values in ${name} (${describeCase(edits)})`);
        } finally {
          c.close();
        }
      }),
      fuzzOptions(10, 4),
    );
  } finally {
    t.diagnostic(`model folder cases: ${n}, merged: ${merged}, refused: ${n - merged}`);
    tmp.cleanup();
  }
});
