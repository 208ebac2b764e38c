/**
 * Fuzz family: config.json of a model folder (causes 1, 5, 6 of issue 20). For any mutation of the
 * config.json of a small engine model, eval and export-gguf run as children (heap cap, timeout) and:
 * - both refuse, with one line holding the shared reader's message, leaving no output, when the
 *   reader (src/io/model-config.ts) refuses the folder;
 * - else export-gguf writes a complete GGUF (every tensor, the whole vocabulary) and eval scores the
 *   model (or refuses only a context too small for the requested tokens);
 * - inspect never crashes; the folder is byte-identical afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { makeTempDir } from '../../src/io/testing.ts';
import { readLlamaFolder } from '../../src/io/model-config.ts';
import { ggufGet, readGguf } from '../../src/io/gguf.ts';
import { DELETE, applyEdits, describeCase, fieldValue, garbageText } from './arbitraries.ts';
import { assertCleanFailure, assertCleanOutcome, assertSuccess, copyModel, makeEngineModel, fuzzOptions, hashTree, leftovers, readJson, runCli, writeJson } from './harness.ts';

const FIELDS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim',
  'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'tie_word_embeddings', 'bos_token_id', 'eos_token_id', 'pad_token_id',
  'architectures', 'model_type', 'hidden_act', 'attention_bias', 'mlp_bias', 'rope_scaling', 'rope_parameters', 'torch_dtype', 'some_new_field',
];

/** Values the reader should accept for the template (3 layers, hidden 32, 4 heads of 8, vocab 259, untied). */
const BENIGN: Record<string, unknown[]> = {
  head_dim: [8, DELETE], num_key_value_heads: [4, DELETE], max_position_embeddings: [256, 512, 4096, 65536, 2, DELETE],
  rms_norm_eps: [1e-6, 1e-5, 0.1, DELETE], rope_theta: [10000, 500000, 1, DELETE], tie_word_embeddings: [false, DELETE],
  bos_token_id: [1, [1], null, 0, 258, DELETE], eos_token_id: [2, [2, 1], null, DELETE], pad_token_id: [0, null, DELETE],
  architectures: [['LlamaForCausalLM'], null, DELETE], model_type: ['llama', DELETE], hidden_act: ['silu', DELETE],
  attention_bias: [false, DELETE], mlp_bias: [false, DELETE], rope_scaling: [null, DELETE],
  rope_parameters: [{ rope_type: 'default', rope_theta: 10000 }, null, DELETE], torch_dtype: ['float32', 'bfloat16', 5], some_new_field: [1, 'x', null],
};
const benignEdit = fc.constantFrom(...Object.keys(BENIGN)).chain((k) => fc.constantFrom(...BENIGN[k]!).map((v) => [k, v] as const));
const wildEdit = fc.tuple(fc.constantFrom(...FIELDS), fieldValue);

const mutation = fc.oneof(
  { weight: 5, arbitrary: fc.array(benignEdit, { minLength: 1, maxLength: 4 }).map((edits) => ({ kind: 'edit' as const, edits })) },
  { weight: 5, arbitrary: fc.tuple(fc.array(benignEdit, { maxLength: 2 }), wildEdit).map(([b, w]) => ({ kind: 'edit' as const, edits: [...b, w] })) },
  { weight: 1, arbitrary: garbageText.map((text) => ({ kind: 'raw' as const, text })) },
);

test('fuzz config.json: eval and export-gguf accept exactly what the shared reader accepts; no crash, no broken output, input untouched', (t) => {
  const tmp = makeTempDir('selfdev-fuzz-config-');
  const template = makeEngineModel(join(tmp.path, 'template'), 1);
  let n = 0;
  let accepted = 0;
  try {
    fc.assert(
      fc.property(mutation, (m) => {
        const dir = copyModel(template, join(tmp.path, `m${n}`));
        const out = join(tmp.path, `m${n}.gguf`);
        n++;
        const cfgPath = join(dir, 'config.json');
        if (m.kind === 'raw') writeJson(cfgPath, m.text);
        else writeJson(cfgPath, applyEdits(readJson(cfgPath), m.edits));
        const before = hashTree(dir);
        let verdict: string | null = null;
        let vocab = 0;
        let tensors = 0;
        try {
          const spec = readLlamaFolder(dir);
          vocab = spec.vocab_size;
          tensors = 2 + 9 * spec.num_hidden_layers + (spec.tie_word_embeddings ? 0 : 1);
        } catch (e) {
          verdict = (e as Error).message;
        }
        const ev = runCli(['eval', '--model', dir, '--limit', '1', '--max-tokens', '2', '--json'], { heapMb: 256, timeoutMs: 90_000 });
        const ex = runCli(['export-gguf', dir, out], { heapMb: 256, timeoutMs: 90_000 });
        assertCleanOutcome(runCli(['inspect', dir], { heapMb: 256, timeoutMs: 60_000 }));
        assert.equal(hashTree(dir), before, `the model folder changed (${describeCase(m)})`);
        if (verdict !== null) {
          const lineEv = assertCleanFailure(ev);
          const lineEx = assertCleanFailure(ex);
          const core = verdict.split(': ').slice(-1)[0]!;
          assert.ok(lineEv.includes(core) && lineEx.includes(core), `eval and export-gguf disagree with the reader on ${describeCase(m)}:\nreader: ${verdict}\neval: ${lineEv}\nexport: ${lineEx}`);
          assert.deepEqual(leftovers(out), []);
        } else {
          accepted++;
          assertSuccess(ex);
          const g = readGguf(out);
          assert.equal(g.tensors.length, tensors);
          assert.equal((ggufGet(g, 'tokenizer.ggml.tokens') as string[]).length, vocab);
          if (ev.status !== 0) assertCleanFailure(ev, /max_position_embeddings|context/);
        }
        rmSync(dir, { recursive: true, force: true }); // a long run makes hundreds of cases
        rmSync(out, { force: true });
      }),
      // one accepted case always runs (the accept path: a complete GGUF, eval scores)
      { ...fuzzOptions(6, 1), examples: [[{ kind: 'edit' as const, edits: [['eos_token_id', [2, 1]] as const, ['head_dim', DELETE] as const] }]] },
    );
  } finally {
    t.diagnostic(`config.json cases: ${n}, accepted: ${accepted}, refused: ${n - accepted}`);
    tmp.cleanup();
  }
});
