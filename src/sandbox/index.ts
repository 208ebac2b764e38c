/** Public surface of the merge-algorithm sandbox (see docs/algorithm-contract.md). */
export { Sandbox, type SandboxOptions } from './sandbox.ts';
export { validateAlgorithm, makeMergeFunction, makeFileMergeFunction, computeStats, smokeCases, transpileIfTypeScript, AlgorithmRejected, type Verdict, type ValidateOptions, type TensorCase, type MergeFunction, type FileMergeFunction } from './validate.ts';
export { DEFAULT_LIMITS, FAILURE_CATEGORIES, tensorKind, tensorLayer, type FailureCategory, type MergeContext, type ModelStats, type TensorStats, type RunOutcome, type SandboxLimits, type TensorKind, type TensorRef } from './types.ts';
