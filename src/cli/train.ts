import { existsSync, readFileSync } from 'node:fs';
import { readRegularText } from '../io/files.ts';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { UsageError, type Command, parseCli } from './command.ts';
import type { Llama as LlamaT } from '../nn/model.ts';
import type { Tokenizer as TokenizerT } from '../nn/tokenizer.ts';

const usage = `selfdev train CONFIG.json|CONFIG.yml [--resume]

Train (or fine-tune) a tiny Llama and save it as a Hugging Face folder (config.json,
model.safetensors, tokenizer files) plus trainer_state.json and optimizer.safetensors for resuming.

CONFIG fields (snake_case; defaults in brackets):
  out               output folder (required)
  data              training data (required), one path or a list: .jsonl of
                    {prompt, completion[, mask_spans]} or {text}, or plain text (documents
                    separated by blank lines, packed to seq_len + 1 tokens)
  init_from         HF folder to fine-tune from (its config and tokenizer are used)
  model             new model: {hidden_size, num_hidden_layers, num_attention_heads,
                    num_key_value_heads, intermediate_size, head_dim, max_position_embeddings [512],
                    rope_theta [10000], rms_norm_eps [1e-5], tie_word_embeddings [false]}
  tokenizer         for a new model: {merges: N} BPE merges learned from the data [0 = bytes],
                    or a folder holding tokenizer.json
  steps [1000]  lr [1e-3]  batch_size [32]  seq_len [256]  warmup [steps/10, at most 20]
  min_lr_frac [0.1]  weight_decay [0]  clip [1]  seed [0]  init_seed [seed]
  completion_only [true]  save_every [0]  dtype [float32]

Options:
  --resume   continue from the trainer state in 'out' (same steps, batch_size and seed)`;

export function readConfigFile(path: string): Record<string, any> {
  if (!existsSync(path)) throw new UsageError(`config file not found: ${path}`);
  let text: string;
  try {
    text = readRegularText(path, 'config file', 16 << 20);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let obj: unknown;
  try {
    obj = /\.ya?ml$/i.test(path) ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: cannot parse (${(e as Error).message})`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new UsageError(`${path}: must hold an object`);
  return obj as Record<string, any>;
}

export const command: Command = {
  name: 'train',
  summary: 'Train or fine-tune a tiny Llama from a JSON/YAML config.',
  usage,
  async run(args) {
    const { values, positionals } = parseCli(() => parseArgs({ args, options: { resume: { type: 'boolean' } }, allowPositionals: true }));
    if (positionals.length !== 1) throw new UsageError('expected exactly one CONFIG file');
    const path = positionals[0];
    const c = readConfigFile(path);
    const known = new Set(['out', 'data', 'init_from', 'model', 'tokenizer', 'steps', 'lr', 'batch_size', 'seq_len', 'warmup', 'min_lr_frac', 'weight_decay', 'clip', 'seed', 'init_seed', 'completion_only', 'save_every', 'dtype']);
    for (const k of Object.keys(c)) if (!known.has(k)) throw new UsageError(`${path}: unknown field '${k}'`);
    if (typeof c.out !== 'string') throw new UsageError(`${path}: 'out' (output folder) is required`);
    const dataPaths: string[] = typeof c.data === 'string' ? [c.data] : c.data;
    if (!Array.isArray(dataPaths) || dataPaths.length === 0 || dataPaths.some((d) => typeof d !== 'string')) throw new UsageError(`${path}: 'data' (a training data file or a list of them) is required`);
    for (const d of dataPaths) if (!existsSync(d)) throw new UsageError(`${path}: data file not found: ${d}`);
    if (c.init_from !== undefined && c.model !== undefined) throw new UsageError(`${path}: give either 'init_from' or 'model', not both`);
    const num = (k: string, d: number, int = false): number => {
      const v = c[k] ?? d;
      if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v)) || v < 0) throw new UsageError(`${path}: '${k}' must be a non-negative ${int ? 'integer' : 'number'}`);
      return v;
    };
    const steps = num('steps', 1000, true);
    const seqLen = num('seq_len', 256, true);
    const seed = num('seed', 0, true);
    const batchSize = num('batch_size', 32, true);
    if (batchSize < 1) throw new UsageError(`${path}: 'batch_size' must be at least 1`);
    if (seqLen < 1) throw new UsageError(`${path}: 'seq_len' must be at least 1`);

    const O = await import('../nn/ops.ts');
    const { Llama, makeConfig, numParams } = await import('../nn/model.ts');
    const { Tokenizer, trainBpe } = await import('../nn/tokenizer.ts');
    const { loadModel } = await import('../nn/checkpoint.ts');
    const { loadExamples, readJsonl } = await import('../nn/data.ts');
    const { train } = await import('../nn/train.ts');
    const { parseDTypeName } = await import('../tensor/dtype.ts');
    await O.initBackend();

    let model: LlamaT;
    let tok: TokenizerT;
    if (c.init_from !== undefined) {
      const { readLlamaFolder } = await import('../io/model-config.ts');
      // the shared reader: config.json against the tensors; the tokenizer must be the engine's layout (checked by loadModel, naming this path)
      readLlamaFolder(c.init_from, { tokenizer: false });
      const r = loadModel(c.init_from, { path: 'selfdev train (init_from)' });
      if (!r.tokenizer) throw new UsageError(`${c.init_from}: no tokenizer.json`);
      model = r.model;
      tok = r.tokenizer;
    } else {
      const t = c.tokenizer ?? { merges: 0 };
      if (typeof t === 'string') tok = Tokenizer.load(t);
      else if (typeof t?.merges === 'number') {
        if (t.merges === 0) tok = new Tokenizer();
        else {
          const texts = dataPaths.flatMap((d) => (d.endsWith('.jsonl')
            ? readJsonl(d).map((r) => (typeof r.text === 'string' ? r.text : `${r.prompt ?? ''}${r.completion ?? ''}`))
            : [readFileSync(d, 'utf8')]));
          tok = trainBpe(texts, t.merges);
        }
      } else throw new UsageError(`${path}: 'tokenizer' must be {merges: N} or a folder`);
      const m = c.model ?? {};
      if (typeof m.hidden_size !== 'number') throw new UsageError(`${path}: model.hidden_size is required for a new model`);
      let cfg;
      try {
        cfg = makeConfig({ max_position_embeddings: Math.max(512, seqLen), ...m, vocab_size: tok.vocabSize });
      } catch (e) {
        throw new UsageError(`${path}: ${(e as Error).message}`);
      }
      model = Llama.init(cfg, num('init_seed', seed, true));
    }
    const examples = dataPaths.flatMap((d) => loadExamples(d, tok, seqLen, { completionOnly: c.completion_only ?? true }));
    console.error(`model ${numParams(model.config)} parameters, vocab ${tok.vocabSize}; ${examples.length} examples`);
    const r = train(model, tok, examples, {
      steps, lr: num('lr', 1e-3), batchSize, seqLen, seed,
      warmup: c.warmup, minLrFrac: c.min_lr_frac, weightDecay: c.weight_decay, clip: c.clip,
      outDir: c.out, saveEvery: c.save_every, resume: values.resume ?? false,
      dtype: c.dtype ? parseDTypeName(c.dtype) : undefined,
    });
    model.dispose();
    console.log(JSON.stringify({ out: c.out, steps: r.steps, loss: r.loss, tokens: r.tokens, truncated_examples: r.truncated, seconds: Math.round(r.seconds * 10) / 10 }));
    return 0;
  },
};

