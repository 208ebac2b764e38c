/**
 * Public surface of the tiny-Llama engine. Call `await initBackend()` once before using models.
 */
export { initBackend, numTensors } from './ops.ts';
export { Tokenizer, trainBpe, pretokenize, PAD_ID, BOS_ID, EOS_ID } from './tokenizer.ts';
export { Llama, makeConfig, paramShapes, numParams, MASKED } from './model.ts';
export type { LlamaConfig, KVCache, ForwardOptions } from './model.ts';
export { saveModel, loadModel, readConfig, hfConfigJson, configFromHf } from './checkpoint.ts';
export type { SaveOptions } from './checkpoint.ts';
export { encodePair, packTexts, makeBatch, loadExamples, readJsonl } from './data.ts';
export type { Example, Batch, PairOptions } from './data.ts';
export { train, lossAndGrads, evalLoss, lrAt, AdamW, batchAt } from './train.ts';
export type { TrainOptions, StepInfo, BatchSource } from './train.ts';
export { generate, generateIds, logprobs, exampleLogprobs } from './generate.ts';
export type { GenerateOptions, Generation, LogprobResult } from './generate.ts';
export { dpoTrain, readPairs, referenceLogps } from './dpo.ts';
export type { PreferencePair, DpoOptions, DpoStepLog } from './dpo.ts';
export { Rng } from './rng.ts';
