import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError, type Command, parseCli } from './command.ts';

const usage = `selfdev generate --model DIR (--prompt TEXT ... | --prompts FILE.jsonl) [options]

Generate completions with a model folder; prints one JSON line per prompt:
{"prompt", "text", "finish": "eos"|"stop"|"length"}. FILE.jsonl rows need a "prompt" field.

Options:
  --max-tokens N     [128]
  --temperature X    0 = greedy [0]
  --top-p X          [1]
  --seed N           sampling seed [0]
  --stop S           stop string (repeatable)
  --batch N          rows per forward batch [32]`;

export const command: Command = {
  name: 'generate',
  summary: 'Generate text with a model folder (batched, KV cache).',
  usage,
  async run(args) {
    const { values, positionals } = parseCli(() => parseArgs({
      args,
      options: {
        model: { type: 'string' }, prompt: { type: 'string', multiple: true }, prompts: { type: 'string' },
        'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' },
        seed: { type: 'string' }, stop: { type: 'string', multiple: true }, batch: { type: 'string' },
      },
      allowPositionals: true,
    }));
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (!values.model) throw new UsageError('--model is required');
    if (!values.prompt && !values.prompts) throw new UsageError('give --prompt TEXT or --prompts FILE.jsonl');
    const num = (k: 'max-tokens' | 'temperature' | 'top-p' | 'seed' | 'batch', d: number, int = false): number => {
      const s = values[k];
      if (s === undefined) return d;
      const v = Number(s);
      if (!Number.isFinite(v) || v < 0 || (int && !Number.isInteger(v))) throw new UsageError(`--${k} must be a non-negative ${int ? 'integer' : 'number'}, got '${s}'`);
      return v;
    };
    const { readJsonl } = await import('../nn/data.ts');
    let prompts: string[] = values.prompt ?? [];
    if (values.prompts) {
      if (!existsSync(values.prompts)) throw new UsageError(`prompts file not found: ${values.prompts}`);
      prompts = prompts.concat(readJsonl(values.prompts).map((r, i) => {
        if (typeof r?.prompt !== 'string') throw new UsageError(`${values.prompts}: row ${i + 1} has no string "prompt"`);
        return r.prompt as string;
      }));
    }
    const genOpts = {
      maxTokens: num('max-tokens', 128, true), temperature: num('temperature', 0), topP: num('top-p', 1),
      seed: num('seed', 0, true), stop: values.stop, batchSize: num('batch', 32, true),
    };
    if (genOpts.topP > 1) throw new UsageError(`--top-p must be in (0, 1], got ${genOpts.topP}`);
    const O = await import('../nn/ops.ts');
    const { loadModel } = await import('../nn/checkpoint.ts');
    const { generate } = await import('../nn/generate.ts');
    const { readLlamaFolder, checkTokenizerFile } = await import('../io/model-config.ts');
    const { join } = await import('node:path');
    // the shared reader: config.json and tokenizer.json against the tensors; the model's own tokenizer whatever its layout
    const spec = readLlamaFolder(values.model, { tokenizer: false });
    checkTokenizerFile(join(values.model, 'tokenizer.json'), { vocabSize: spec.vocab_size });
    await O.initBackend();
    const { model, tokenizer } = loadModel(values.model, { tokenizer: 'any' });
    if (!tokenizer) throw new UsageError(`${values.model}: no tokenizer.json`);
    const out = generate(model, tokenizer, prompts, genOpts);
    out.forEach((g, i) => console.log(JSON.stringify({ prompt: prompts[i], text: g.text, finish: g.finish })));
    return 0;
  },
};

