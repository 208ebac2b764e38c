import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { command as trainCmd } from './train.ts';
import { command as genCmd } from './generate.ts';
import { command as dpoCmd } from './dpo.ts';
import { UsageError } from './command.ts';
import { captureConsole } from './testing.ts';

test('train → generate → dpo through the CLI commands', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-nn-'));
  try {
    const data = join(dir, 'd.jsonl');
    writeFileSync(data, Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `${i % 10}>`, completion: String((i + 1) % 10) })).join('\n') + '\n');
    const cfg = join(dir, 'c.yml');
    writeFileSync(cfg, `out: ${join(dir, 'm')}\ndata: ${data}\nmodel: {hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2}\nsteps: 4\nbatch_size: 4\nseq_len: 8\n`);
    const train = await captureConsole(() => trainCmd.run([cfg]));
    assert.equal(train.code, 0, train.err);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'generation_config.json', 'trainer_state.json', 'optimizer.safetensors']) {
      assert.ok(existsSync(join(dir, 'm', f)), f);
    }
    assert.equal(JSON.parse(train.out.split('\n')[0]).steps, 4);
    const gen = await captureConsole(() => genCmd.run(['--model', join(dir, 'm'), '--prompt', '3>', '--prompt', '4>', '--max-tokens', '2']));
    assert.equal(gen.code, 0, gen.err);
    assert.deepEqual(gen.out.split('\n').map((l) => JSON.parse(l).prompt), ['3>', '4>']);
    const pairs = join(dir, 'p.jsonl');
    writeFileSync(pairs, '{"prompt":"1>","chosen":"2","rejected":"7"}\n{"prompt":"5>","chosen":"6","rejected":"0"}\n');
    const dpo = await captureConsole(() => dpoCmd.run(['--model', join(dir, 'm'), '--data', pairs, '--out', join(dir, 'd'), '--steps', '2', '--batch', '2']));
    assert.equal(dpo.code, 0, dpo.err);
    const dlog = JSON.parse(readFileSync(join(dir, 'd', 'dpo_log.json'), 'utf8'));
    assert.equal(dlog.length, 2);
    assert.ok('rewards/margins' in dlog[0]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI usage errors are specific', async () => {
  await assert.rejects(trainCmd.run([]), UsageError);
  await assert.rejects(trainCmd.run(['/nonexistent/c.json']), /config file not found/);
  await assert.rejects(dpoCmd.run(['--model', 'x']), /--data is required/);
  await assert.rejects(genCmd.run(['--model', 'x']), /--prompt/);
  await assert.rejects(genCmd.run(['--model', 'x', '--prompt', 'a', '--max-tokens=-1']), /non-negative integer/);
  await assert.rejects(genCmd.run(['--model', 'x', '--bogus']), UsageError);
});
