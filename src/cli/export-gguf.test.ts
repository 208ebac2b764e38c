import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { command } from './export-gguf.ts';
import { UsageError } from './command.ts';
import { captureConsole } from './testing.ts';
import { makeLlamaCheckpoint, makeTempDir } from '../io/testing.ts';
import { readGguf, ggufGet } from '../io/gguf.ts';

function tokenizerJson(): string {
  // bytes only (no merges): ids 3..258 are the GPT-2 byte characters; ASCII 0x21..0x7e map to themselves
  const vocab: Record<string, number> = { '<pad>': 0, '<s>': 1, '</s>': 2 };
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    vocab[String.fromCodePoint(printable ? b : 256 + extra++)] = 3 + b;
  }
  const sp = (id: number, content: string) => ({ id, content, special: true, single_word: false, lstrip: false, rstrip: false, normalized: false });
  // the ByteLevel pre-tokenizer and decoder say how text maps to those byte characters (the Hugging Face library reads them)
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return JSON.stringify({ added_tokens: [sp(0, '<pad>'), sp(1, '<s>'), sp(2, '</s>')], pre_tokenizer: byteLevel, decoder: byteLevel, model: { type: 'BPE', vocab, merges: [] } });
}

test('selfdev export-gguf writes an f16 GGUF and reports it; bad usage is a UsageError', async () => {
  const tmp = makeTempDir();
  try {
    const dir = join(tmp.path, 'm');
    makeLlamaCheckpoint(dir, { layers: 1, hidden: 32, intermediate: 48, vocab: 260, heads: 2, kvHeads: 1, dtype: 'BF16', seed: 1 });
    writeFileSync(join(dir, 'tokenizer.json'), tokenizerJson());
    const out = join(tmp.path, 'm.gguf');
    const f16 = await captureConsole(() => command.run([dir, out, '--dtype', 'f16', '--name', 'tiny-m']));
    assert.equal(f16.code, 0, f16.err);
    assert.match(f16.out, /wrote .*m\.gguf: 12 tensors, .* MB of f16 weights, vocab 260/);
    const f = readGguf(out);
    assert.equal(ggufGet(f, 'general.name'), 'tiny-m');
    assert.equal(ggufGet(f, 'general.file_type'), 1);
    assert.equal((ggufGet(f, 'tokenizer.ggml.tokens') as string[])[259], '[PAD259]');
    // --verify: llama.cpp on the f32 export agrees with the reference forward
    const v = await captureConsole(() => command.run([dir, join(tmp.path, 'v.gguf'), '--verify']));
    assert.equal(v.code, 0, v.err);
    const m = /verified with llama\.cpp: (\d+)\/(\d+) greedy tokens equal the reference .* difference (\S+)/.exec(v.out);
    assert.ok(m, v.out);
    assert.equal(m[1], m[2]);
    assert.ok(Number(m[2]) >= 1);
    assert.ok(Number(m[3]) < 1e-3, `probability difference ${m[3]}`);
    // no tokenizer_config.json and no post-processor: the files add nothing before a prompt, nor does the GGUF
    assert.match(v.out, /\(prompts tokenized as the model's files say: nothing added before the text; llama\.cpp the same\)/);
    // tokenizer_config.json says add_bos_token: the prompts start with <s> (id 1), in the files and in llama.cpp
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>' }));
    const bos = await captureConsole(() => command.run([dir, join(tmp.path, 'bos.gguf'), '--verify']));
    assert.equal(bos.code, 0, `${bos.out}\n${bos.err}`);
    assert.equal(ggufGet(readGguf(join(tmp.path, 'bos.gguf')), 'tokenizer.ggml.add_bos_token'), true);
    assert.match(bos.out, /verified with llama\.cpp: (\d+)\/\1 greedy tokens .*\(prompts tokenized as the model's files say: \[1\] before the text; llama\.cpp the same\)/);
    await assert.rejects(command.run([dir]), (e: Error) => e instanceof UsageError && /expected MODEL_DIR and OUT\.gguf/.test(e.message));
    await assert.rejects(command.run([dir, out, '--dtype', 'q4']), (e: Error) => e instanceof UsageError && /--dtype must be f32 or f16, got 'q4'/.test(e.message));
    await assert.rejects(command.run([dir, out, '--bogus']), UsageError);
  } finally {
    tmp.cleanup();
  }
});
