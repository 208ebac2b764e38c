// The files say what the engine does: every tokenizer.json selfdev ships or writes, loaded by the
// official Hugging Face tokenizers library (its Rust core through the `tokenizers` npm package),
// encodes a text to exactly the ids selfdev feeds its model (bos + text); tokenizer_config.json and
// the GGUF metadata say add_bos_token; and greedy continuations from the library's ids equal
// selfdev's own evaluation on the shipped world.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer as HfTokenizer } from 'tokenizers';
import { initBackend } from './ops.ts';
import { Llama, makeConfig } from './model.ts';
import { loadModel, saveMergedModel, saveModel } from './checkpoint.ts';
import { Tokenizer, trainBpe } from './tokenizer.ts';
import { encodePair } from './data.ts';
import { train } from './train.ts';
import { dpoTrain } from './dpo.ts';
import { generateIds } from './generate.ts';
import { exportGguf } from './export-gguf.ts';
import { readGguf, ggufGet } from '../io/gguf.ts';
import { makeTempDir } from '../io/testing.ts';
import { buildPrompt } from '../eval/prompt.ts';
import { loadGsm8k } from '../eval/gsm8k.ts';
import { BuiltinBackend } from '../eval/backends.ts';
import { BuiltinFactory } from '../factory/builtin.ts';
import { command as mergeCommand } from '../cli/merge.ts';
import { captureConsole } from '../cli/testing.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dev = loadGsm8k(join(root, 'world', 'bench', 'dev.jsonl'));

/** Texts the engine tokenizes: eval prompts, a factory-style prompt, special-token strings, non-ASCII, empty. */
const TEXTS = [
  ...dev.slice(0, 4).map((p) => buildPrompt(p.question)),
  'function merge(taskVectors, ctx) {\n  return torch.stack(taskVectors).sum(0).mul(0.4);\n}\n',
  'a <s> b </s> c<pad>',
  'é漢字 🙂  \t\n x',
  '',
];

/** The ids the Hugging Face library gives for `text` from `dir`/tokenizer.json, special tokens on (its default). */
async function hfIds(dir: string, text: string): Promise<number[]> {
  const enc = await HfTokenizer.fromFile(join(dir, 'tokenizer.json')).encode(text, null, { addSpecialTokens: true });
  return enc.getIds();
}

/** Every file of `dir` says: bos added, eos not; and the HF library's ids are the engine's for every text. */
async function assertFilesAgree(dir: string): Promise<void> {
  const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.add_bos_token, true, `${dir}: tokenizer_config.json add_bos_token`);
  assert.equal(cfg.add_eos_token, false, `${dir}: tokenizer_config.json add_eos_token`);
  assert.equal(cfg.bos_token, '<s>', `${dir}: tokenizer_config.json bos_token`);
  const special = JSON.parse(readFileSync(join(dir, 'special_tokens_map.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(special, { bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>' }, `${dir}: special_tokens_map.json`);
  const tok = Tokenizer.load(dir);
  for (const text of TEXTS) {
    const ids = tok.encodePrompt(text);
    assert.equal(ids[0], 1, 'the engine starts with <s>');
    assert.deepEqual(await hfIds(dir, text), ids, `${dir}: ${JSON.stringify(text.slice(0, 40))}`);
  }
}

test('the shipped world (world/models, world/models-2) and the builtin factory: HF tokenizers gives exactly the engine ids', async () => {
  const dirs = ['factory/model', ...['world/models', 'world/models-2'].flatMap((w) => readdirSync(join(root, w)).map((d) => join(w, d)))]
    .map((d) => join(root, d))
    .filter((d) => existsSync(join(d, 'config.json')));
  assert.equal(dirs.length, 1 + 10 + 10, dirs.join(', '));
  for (const d of dirs) await assertFilesAgree(d);
  // the builtin factory feeds bos + the prompt (a prompt shorter than its window: not cut)
  await initBackend();
  const f = await BuiltinFactory.load(join(root, 'factory', 'model'), { maxPromptTokens: 64 });
  try {
    const text = 'function merge(taskVectors, ctx) {\n';
    assert.deepEqual(f.promptIds(text, 100), await hfIds(join(root, 'factory', 'model'), text));
  } finally {
    await f.close();
  }
});

test('checkpoints selfdev writes (save, train, dpo, merge, merged-model folder of recursive mode / eval.server, GGUF) say add_bos and encode like the engine', async () => {
  await initBackend();
  const tmp = makeTempDir('selfdev-tokfiles-');
  try {
    const tok = trainBpe(TEXTS, 40);
    const cfg = makeConfig({ vocab_size: tok.vocabSize, hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 64, max_position_embeddings: 128 });
    const model = Llama.init(cfg, 3);
    const saved = join(tmp.path, 'saved');
    saveModel(saved, model, tok);
    await assertFilesAgree(saved);

    const trained = join(tmp.path, 'trained');
    train(model, tok, [encodePair(tok, 'Question: 1 + 1?', ' #### 2')], { steps: 1, lr: 1e-3, batchSize: 1, seqLen: 32, seed: 1, progress: false, outDir: trained });
    await assertFilesAgree(trained);

    const dpo = join(tmp.path, 'dpo');
    dpoTrain(model, tok, [{ prompt: 'Question: 1 + 1?', chosen: ' #### 2', rejected: ' #### 3' }], { steps: 1, lr: 1e-3, batchSize: 1, progress: false, outDir: dpo });
    await assertFilesAgree(dpo);

    // selfdev merge carries the base model's tokenizer files
    const merged = join(tmp.path, 'merged');
    const yml = join(tmp.path, 'merge.yml');
    writeFileSync(yml, `merge_method: task_arithmetic\nbase_model: ${saved}\nmodels:\n  - model: ${trained}\n    parameters: {weight: 0.5}\n  - model: ${dpo}\n    parameters: {weight: 0.5}\ndtype: float32\n`);
    const cli = await captureConsole(() => mergeCommand.run([yml, merged]));
    assert.equal(cli.code, 0, cli.err);
    await assertFilesAgree(merged);

    // the folder of a loop merge (recursive mode's next factory, eval.server's candidate)
    const recursive = join(tmp.path, 'merged-iter-1');
    saveMergedModel(recursive, saved, cfg, loadModel(dpo).model.getWeights());
    await assertFilesAgree(recursive);

    // GGUF: llama.cpp reads add_bos_token from the metadata
    const gguf = join(tmp.path, 'm.gguf');
    exportGguf(saved, gguf);
    const g = readGguf(gguf);
    assert.equal(ggufGet(g, 'tokenizer.ggml.add_bos_token'), true);
    assert.equal(ggufGet(g, 'tokenizer.ggml.add_eos_token'), false);
    assert.equal(ggufGet(g, 'tokenizer.ggml.bos_token_id'), 1);
    // and llama.cpp (node-llama-cpp) then puts <s> before the text's tokens, as the engine does
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 1 });
    try {
      const m = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
      try {
        assert.equal(m.tokens.shouldPrependBosToken, true);
        assert.equal(m.tokens.bos, 1);
        const text = TEXTS[0]!;
        assert.deepEqual([m.tokens.bos, ...(m.tokenize(text, false) as number[])], Tokenizer.load(saved).encodePrompt(text));
      } finally {
        await m.dispose();
      }
    } finally {
      await llama.dispose();
    }
    model.dispose();
  } finally {
    tmp.cleanup();
  }
});

test('greedy continuations of M0, E1 and E2 from the HF library ids equal selfdev evaluation (9 of 9 prompts)', async () => {
  await initBackend();
  const prompts = dev.slice(0, 3).map((p) => buildPrompt(p.question));
  let same = 0;
  for (const name of ['M0', 'E1_addsub', 'E2_groups']) {
    const dir = join(root, 'world', 'models', name);
    const b = await BuiltinBackend.load(dir);
    try {
      const ours = await b.complete(prompts, { maxTokens: 40, stop: [], calculator: false });
      for (const [i, p] of prompts.entries()) {
        const [g] = generateIds(b.model, b.tokenizer, [await hfIds(dir, p)], { maxTokens: 40 });
        assert.equal(g!.text, ours[i]!.text, `${name}, prompt ${i}`);
        same++;
      }
    } finally {
      await b.close();
    }
  }
  assert.equal(same, 9);
});

test('a tokenizer.json whose post-processor says something else than "<s> + text" is refused; a legacy one without post-processor loads (the engine adds <s> either way)', () => {
  const tmp = makeTempDir('selfdev-tokpost-');
  try {
    const tok = trainBpe(TEXTS, 10);
    tok.save(tmp.path);
    const path = join(tmp.path, 'tokenizer.json');
    const j = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    writeFileSync(path, JSON.stringify({ ...j, post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true } }));
    assert.throws(() => Tokenizer.load(tmp.path), /tokenizer\.json: post_processor must be null or TemplateProcessing "<s> \$A" \(this engine always prepends <s>, id 1\), got \{"type":"ByteLevel"/);
    writeFileSync(path, JSON.stringify({ ...j, post_processor: null }));
    assert.deepEqual(Tokenizer.load(tmp.path).encodePrompt('a b'), tok.encodePrompt('a b'));
  } finally {
    tmp.cleanup();
  }
});
