/**
 * Fuzz family: tokenizer.json of a model folder (causes 6 and 8 of issue 20). For any mutation of
 * an engine model's byte-level BPE tokenizer.json: export-gguf writes a GGUF only from a tokenizer the shared
 * reader accepts (no "[PAD i]" vocabulary from an empty one, no merges of unknown tokens), with the
 * whole vocabulary and every merge; eval accepts a tokenizer export-gguf refuses only when the
 * Hugging Face tokenizers library loads it and its ids fit the embedding (eval runs a model's own
 * tokenizer.json whatever its layout); both refuse with one line and leave no output; the folder is
 * byte-identical afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { makeTempDir } from '../../src/io/testing.ts';
import { checkTokenizerFile, readLlamaFolder } from '../../src/io/model-config.ts';
import { HfTokenizer } from '../../src/nn/hf-tokenizer.ts';
import { ggufGet, readGguf } from '../../src/io/gguf.ts';
import { describeCase, edgeNumber, garbageText, jsonValue } from './arbitraries.ts';
import { assertCleanFailure, assertCleanOutcome, assertSuccess, copyModel, makeEngineModel, fuzzOptions, hashTree, leftovers, readJson, runCli, writeJson } from './harness.ts';

type Tok = { model: { type?: unknown; vocab?: unknown; merges?: unknown }; added_tokens?: unknown } & Record<string, unknown>;
const TOKENS = ['Ġ', 'a', 'b', 'Ġa', 'ab', '<s>', '</s>', '<pad>', 'zz', '', ' ', 'Ġ Ġ'];

/** One edit of the tokenizer: a function of the parsed JSON (the description is for messages). */
const edit: fc.Arbitrary<{ what: string; apply: (j: Tok) => void }> = fc.oneof(
  jsonValue.map((v) => ({ what: `model.type=${describeCase(v)}`, apply: (j: Tok) => void (j.model.type = v) })),
  fc.constantFrom({}, [], null, 5, 'x').map((v) => ({ what: `model.vocab=${describeCase(v)}`, apply: (j: Tok) => void (j.model.vocab = v) })),
  fc.tuple(fc.constantFrom(...TOKENS), fc.oneof(edgeNumber, jsonValue)).map(([t, id]) => ({ what: `vocab[${t}]=${describeCase(id)}`, apply: (j: Tok) => void ((j.model.vocab as Record<string, unknown>)[t] = id) })),
  fc.integer({ min: 0, max: 258 }).map((id) => ({ what: `drop id ${id}`, apply: (j: Tok) => {
    const v = j.model.vocab as Record<string, number>;
    for (const k of Object.keys(v)) if (v[k] === id) delete v[k];
  } })),
  fc.array(fc.oneof(fc.tuple(fc.constantFrom(...TOKENS), fc.constantFrom(...TOKENS)).map(([a, b]) => [a, b] as unknown), fc.constantFrom(...TOKENS).map((s) => s as unknown), jsonValue), { maxLength: 3 })
    .map((ms) => ({ what: `merges+=${describeCase(ms)}`, apply: (j: Tok) => void (j.model.merges = [...((j.model.merges as unknown[]) ?? []), ...ms]) })),
  jsonValue.map((v) => ({ what: `merges=${describeCase(v)}`, apply: (j: Tok) => void (j.model.merges = v) })),
  fc.oneof(jsonValue, fc.array(fc.record({ id: fc.oneof(fc.integer({ min: -1, max: 300 }), jsonValue), content: fc.oneof(fc.constantFrom(...TOKENS), jsonValue) }), { maxLength: 2 }))
    .map((v) => ({ what: `added_tokens=${describeCase(v)}`, apply: (j: Tok) => void (j.added_tokens = v) })),
  fc.constant({ what: 'delete model', apply: (j: Tok) => void delete (j as Record<string, unknown>).model }),
);

/** Edits that keep a valid byte-level BPE of 259 tokens. */
const benign: fc.Arbitrary<{ what: string; apply: (j: Tok) => void }> = fc.constantFrom(
  { what: 'no added_tokens', apply: (j: Tok) => void delete j.added_tokens },
  { what: 'added_tokens not special', apply: (j: Tok) => (j.added_tokens as Array<Record<string, unknown>>).forEach((a) => (a.special = false)) },
  { what: 'merges []', apply: (j: Tok) => void (j.model.merges = []) },
  { what: 'extra field', apply: (j: Tok) => void (j.extra = { a: 1 }) },
  { what: 'model.dropout null', apply: (j: Tok) => void ((j.model as Record<string, unknown>).dropout = null) },
  { what: 'added_tokens reversed', apply: (j: Tok) => void (j.added_tokens as unknown[]).reverse() },
);

const mutation = fc.oneof(
  { weight: 4, arbitrary: fc.array(benign, { minLength: 1, maxLength: 3 }).map((edits) => ({ kind: 'edit' as const, edits })) },
  { weight: 5, arbitrary: fc.array(edit, { minLength: 1, maxLength: 2 }).map((edits) => ({ kind: 'edit' as const, edits })) },
  { weight: 1, arbitrary: garbageText.map((text) => ({ kind: 'raw' as const, text })) },
);

test('fuzz tokenizer.json: no GGUF from a broken tokenizer; eval accepts what export-gguf refuses only through the tokenizers library; no crash, input untouched', (t) => {
  const tmp = makeTempDir('selfdev-fuzz-tok-');
  const template = makeEngineModel(join(tmp.path, 'template'), 1);
  let n = 0;
  let accepted = 0;
  let libraryOnly = 0;
  try {
    fc.assert(
      fc.property(mutation, (m) => {
        const dir = copyModel(template, join(tmp.path, `m${n}`));
        const out = join(tmp.path, `m${n}.gguf`);
        n++;
        const path = join(dir, 'tokenizer.json');
        if (m.kind === 'raw') writeJson(path, m.text);
        else {
          const j = readJson(path) as Tok;
          for (const e of m.edits) {
            try {
              e.apply(j);
            } catch {
              // an edit that does not apply to what an earlier edit left (e.g. vocab is no longer an object)
            }
          }
          writeJson(path, j);
        }
        const label = m.kind === 'raw' ? describeCase(m.text) : m.edits.map((e) => e.what).join('; ');
        const before = hashTree(dir);
        let verdict: string | null = null;
        try {
          readLlamaFolder(dir);
        } catch (e) {
          verdict = (e as Error).message;
        }
        const ex = runCli(['export-gguf', dir, out], { heapMb: 256, timeoutMs: 90_000 });
        const ev = runCli(['eval', '--model', dir, '--limit', '1', '--max-tokens', '2', '--json'], { heapMb: 256, timeoutMs: 90_000 });
        assert.equal(hashTree(dir), before, `the model folder changed (${label})`);
        const evalOk = assertCleanOutcome(ev);
        if (verdict !== null) {
          assertCleanFailure(ex);
          if (evalOk) {
            // eval ran the folder's own tokenizer through the library: it must load there, ids within the embedding
            checkTokenizerFile(path, { vocabSize: 259 });
            void HfTokenizer.load(dir).close();
            libraryOnly++;
          }
          assert.deepEqual(leftovers(out), []);
          rmSync(dir, { recursive: true, force: true });
          return;
        }
        accepted++;
        assertSuccess(ex);
        const g = readGguf(out);
        const tokens = ggufGet(g, 'tokenizer.ggml.tokens') as string[];
        assert.equal(tokens.length, 259, label);
        const merges = (readJson(path) as Tok).model.merges;
        assert.equal((ggufGet(g, 'tokenizer.ggml.merges') as string[]).length, Array.isArray(merges) ? merges.length : 0, label);
        rmSync(dir, { recursive: true, force: true }); // a long run makes hundreds of cases
        rmSync(out, { force: true });
      }),
      fuzzOptions(6, 2),
    );
  } finally {
    t.diagnostic(`tokenizer.json cases: ${n}, accepted: ${accepted}, refused by export-gguf: ${n - accepted} (of which eval ran ${libraryOnly} through the tokenizers library)`);
    tmp.cleanup();
  }
});
