/**
 * Fuzz family: output paths (cause 4 of issue 20). `selfdev merge CONFIG OUT [--overwrite]` and
 * `selfdev export-gguf MODEL OUT`, with OUT anywhere around the inputs: an input folder, a folder
 * inside one, a folder holding one, a symlink to one, the config file, a file the export reads, a
 * fresh path, an earlier output. Inputs (models, config) are byte-identical afterwards, whatever
 * happens; an OUT related to an input is refused with one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { makeTempDir } from '../../src/io/testing.ts';
import { assertCleanFailure, assertCleanOutcome, fuzzOptions, hashTree, makeMergeModel, runCli } from './harness.ts';

test('fuzz output paths: an output never replaces, fills or contains an input', (t) => {
  const tmp = makeTempDir('selfdev-fuzz-out-');
  const world = join(tmp.path, 'world');
  mkdirSync(world);
  const base = join(world, 'base');
  const m1 = join(world, 'm1');
  makeMergeModel(base, 1);
  makeMergeModel(m1, 2, base);
  const cfg = join(tmp.path, 'merge.yml');
  writeFileSync(cfg, YAML.stringify({ merge_method: 'task_arithmetic', base_model: base, models: [{ model: m1, parameters: { weight: 0.5 } }] }));

  symlinkSync(base, join(tmp.path, 'link-to-base'));
  symlinkSync(world, join(tmp.path, 'link-to-world'));
  const cfgText = YAML.stringify({ merge_method: 'task_arithmetic', base_model: base, models: [{ model: m1, parameters: { weight: 0.5 } }] });
  const inputsOf = { merge: [base, m1, cfg], 'export-gguf': [base] } as const;
  const hashes = (cmd: keyof typeof inputsOf) => inputsOf[cmd].map(hashTree);
  const before = { merge: hashes('merge'), 'export-gguf': hashes('export-gguf') };
  // [path, related to an input of merge (base, m1, the config), related to the input of export-gguf (base)]
  const TARGETS: Array<[string, boolean, boolean]> = [
    [base, true, true], [m1, true, false], [join(base, 'sub'), true, true], [join(base, 'sub', 'deeper'), true, true], [world, true, true],
    [tmp.path, true, true], [join(tmp.path, 'link-to-base'), true, true], [join(tmp.path, 'link-to-world', 'x'), false, false],
    [join(tmp.path, 'link-to-base', 'model.safetensors'), true, true], [cfg, true, false], [join(base, 'config.json'), true, true],
    [join(tmp.path, 'fresh'), false, false], [join(tmp.path, 'earlier'), false, false], [join(tmp.path, 'nested', 'new', 'out'), false, false],
  ];
  let n = 0;
  let refused = 0;
  try {
    fc.assert(
      fc.property(fc.constantFrom(...TARGETS), fc.boolean(), fc.constantFrom('merge', 'export-gguf'), ([out, mergeRel, exportRel], overwrite, cmd) => {
        n++;
        const args = cmd === 'merge' ? ['merge', cfg, out, ...(overwrite ? ['--overwrite'] : [])] : ['export-gguf', base, out];
        const r = runCli(args, { heapMb: 256, timeoutMs: 60_000 });
        assert.deepEqual(hashes(cmd), before[cmd], `an input changed: selfdev ${args.join(' ')}`);
        writeFileSync(cfg, cfgText); // export-gguf may write over the merge config: that is its output, not its input
        if (cmd === 'merge' ? mergeRel : exportRel) {
          refused++;
          assertCleanFailure(r, /is an input|lies inside an input|contains an input/);
          return;
        }
        if (!assertCleanOutcome(r)) refused++;
        else if (cmd === 'merge') assert.ok(existsSync(join(out, 'model.safetensors')));
        else assert.ok(existsSync(out));
      }),
      fuzzOptions(8, 5),
    );
  } finally {
    t.diagnostic(`output path cases: ${n}, refused: ${refused}`);
    tmp.cleanup();
  }
});
