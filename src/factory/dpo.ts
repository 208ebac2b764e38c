/**
 * One DPO step of the builtin factory (the loop's step (4) for `factory.kind: builtin`): the
 * policy and the frozen reference are loaded from the previous factory folder, trained on the
 * iteration's preference pairs, and the policy is written as a new HF folder (atomically, by
 * saveModel). The prompt is the one the factory samples with, cut to the last `maxPromptTokens`
 * tokens as the builtin factory sees it, so DPO trains on the text it is sampled from.
 */
import { loadModel, saveModel, dpoTrain, type DpoOptions, type DpoStepLog } from '../nn/index.ts';

export interface BuiltinDpoJob {
  /** The factory folder to start from (policy and reference). */
  src: string;
  /** The folder the trained factory is written to. */
  out: string;
  /** The prompt text the iteration sampled with. */
  prompt: string;
  /** The builtin factory's prompt window (factory.maxPromptTokens), when set. */
  maxPromptTokens?: number;
  /** The completions (program code) of each pair. */
  pairs: { chosen: string; rejected: string }[];
  /** DPO settings; `steps` is derived from `epochs` and `batchSize` over the pairs. */
  dpo: Omit<DpoOptions, 'steps'> & { epochs: number; batchSize: number };
}

/** Train the builtin factory on `job.pairs` and save it to `job.out`; returns the per-step log. */
export function dpoTrainBuiltinFactory(job: BuiltinDpoJob): DpoStepLog[] {
  const pol = loadModel(job.src, { path: 'the loop\'s DPO of the builtin factory' });
  const ref = loadModel(job.src, { tokenizer: 'none' });
  try {
    if (!pol.tokenizer) throw new Error(`${job.src}: factory has no tokenizer.json`);
    // the builtin factory sees only the last maxPromptTokens of the prompt: train on the same text
    const ids = pol.tokenizer.encode(job.prompt);
    const prompt = job.maxPromptTokens && ids.length > job.maxPromptTokens ? pol.tokenizer.decode(ids.slice(-job.maxPromptTokens)) : job.prompt;
    const pairs = job.pairs.map((p) => ({ prompt, chosen: p.chosen, rejected: p.rejected }));
    const { epochs, ...dpo } = job.dpo;
    const steps = Math.max(1, Math.ceil((pairs.length * epochs) / dpo.batchSize));
    const log = dpoTrain(pol.model, pol.tokenizer, pairs, { ...dpo, steps }, ref.model);
    saveModel(job.out, pol.model, pol.tokenizer);
    return log;
  } finally {
    pol.model.dispose();
    ref.model.dispose();
  }
}
