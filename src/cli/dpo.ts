import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError, type Command, parseCli } from './command.ts';

const usage = `selfdev dpo --model DIR --data PAIRS.jsonl --out DIR [options]

DPO-train a model (HF folder) on TRL-style preference pairs {prompt, chosen, rejected}
(optional ref_chosen_logps / ref_rejected_logps are used as given). The reference is the starting
model; its log-probs are computed once before training. Saves the policy to --out with
dpo_log.json (per step: loss, rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies, logps/chosen, logps/rejected).

Options:
  --steps N         optimizer steps [100]
  --epochs N        instead of --steps: ceil(pairs × N / batch) steps (the loop's in-process rule)
  --lr X            peak learning rate [1e-5]
  --batch N         pairs per step [8]
  --beta X          DPO beta [0.1]
  --loss sigmoid|ipo  [sigmoid]
  --nll-alpha X     weight of the length-normalised NLL on chosen [0]
  --warmup N        warmup steps [steps/10, at most 10]
  --weight-decay X  [0]
  --max-len N       tokens per sequence, the end is cut [max_position_embeddings]
  --max-prompt-len N  keep only the last N tokens of each prompt [all]
  --seed N          data order [0]
  --engine native|tfjs  gradient engine [native when the addon has AVX2+FMA, else tfjs]`;

export const command: Command = {
  name: 'dpo',
  summary: 'DPO-train a model on preference pairs (TRL JSONL).',
  usage,
  async run(args) {
    const { values, positionals } = parseCli(() => parseArgs({
      args,
      options: {
        model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' },
        steps: { type: 'string' }, epochs: { type: 'string' }, lr: { type: 'string' }, batch: { type: 'string' }, beta: { type: 'string' },
        loss: { type: 'string' }, 'nll-alpha': { type: 'string' }, warmup: { type: 'string' },
        'weight-decay': { type: 'string' }, 'max-len': { type: 'string' }, 'max-prompt-len': { type: 'string' }, seed: { type: 'string' },
        engine: { type: 'string' },
      },
      allowPositionals: true,
    }));
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    for (const k of ['model', 'data', 'out'] as const) if (!values[k]) throw new UsageError(`--${k} is required`);
    if (!existsSync(values.data!)) throw new UsageError(`data file not found: ${values.data}`);
    const num = (k: keyof typeof values, d: number | undefined, int = false): number | undefined => {
      const s = values[k];
      if (s === undefined) return d;
      const v = Number(s);
      if (typeof s !== 'string' || !Number.isFinite(v) || v < 0 || (int && !Number.isInteger(v))) throw new UsageError(`--${k} must be a non-negative ${int ? 'integer' : 'number'}, got '${s}'`);
      return v;
    };
    const loss = values.loss ?? 'sigmoid';
    if (loss !== 'sigmoid' && loss !== 'ipo') throw new UsageError(`--loss must be sigmoid or ipo, got '${loss}'`);
    const engine = values.engine;
    if (engine !== undefined && engine !== 'native' && engine !== 'tfjs') throw new UsageError(`--engine must be native or tfjs, got '${engine}'`);
    const dpoOpts = {
      steps: num('steps', 100, true)!, lr: num('lr', 1e-5)!, batchSize: num('batch', 8, true)!, beta: num('beta', 0.1),
      lossType: loss as 'sigmoid' | 'ipo', nllAlpha: num('nll-alpha', 0), warmup: num('warmup', undefined, true), weightDecay: num('weight-decay', 0),
      maxLen: num('max-len', undefined, true), maxPromptLen: num('max-prompt-len', undefined, true), seed: num('seed', 0, true), engine: engine as 'native' | 'tfjs' | undefined,
    };
    if (!(dpoOpts.beta! > 0)) throw new UsageError('--beta must be > 0');
    if (dpoOpts.batchSize < 1) throw new UsageError('--batch must be at least 1');
    const O = await import('../nn/ops.ts');
    const { loadModel, saveModel } = await import('../nn/checkpoint.ts');
    const { dpoTrain, readPairs } = await import('../nn/dpo.ts');
    const pairs = readPairs(values.data!);
    const { readLlamaFolder } = await import('../io/model-config.ts');
    // the shared reader: config.json against the tensors; the tokenizer must be the engine's layout (checked by loadModel, naming this path)
    readLlamaFolder(values.model!, { tokenizer: false });
    await O.initBackend();
    const { model, tokenizer } = loadModel(values.model!, { path: 'selfdev dpo (training writes the engine\'s tokenizer back)' });
    if (!tokenizer) throw new UsageError(`${values.model}: no tokenizer.json`);
    if (values.epochs !== undefined) {
      if (values.steps !== undefined) throw new UsageError('give --steps or --epochs, not both');
      const epochs = num('epochs', 1, true)!;
      if (epochs < 1) throw new UsageError('--epochs must be at least 1');
      dpoOpts.steps = Math.max(1, Math.ceil((pairs.length * epochs) / dpoOpts.batchSize));
    }
    const logs = dpoTrain(model, tokenizer, pairs, dpoOpts);
    saveModel(values.out!, model, tokenizer, { extraJson: { 'dpo_log.json': logs } });
    console.log(JSON.stringify({ out: values.out, pairs: pairs.length, ...logs[logs.length - 1] }));
    return 0;
  },
};

