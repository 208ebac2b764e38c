/**
 * `passthrough` (mergekit): copies the single input tensor, multiplied by its model's `scale` when
 * given (used for layer stacking / frankenmerges, where each output tensor has one source).
 */
import type { MergeMethod } from '../types.ts';
import { checkInput, numParam, where } from './common.ts';

export const passthrough: MergeMethod = {
  name: 'passthrough',
  summary: 'Copy the one input tensor, optionally × scale.',
  base: 'none',
  minModels: 1,
  maxModels: 1,
  globalParams: [],
  modelParams: [{ name: 'scale', type: 'number', description: 'optional factor applied to the tensor' }],
  merge(input) {
    checkInput('passthrough', input, { base: 'none', min: 1, max: 1 });
    const p = input.modelParams[0]!;
    const out = input.models[0]!.slice();
    if (p.scale !== undefined) {
      const s = numParam(p, 'scale', undefined, where('passthrough', input));
      for (let i = 0; i < out.length; i++) out[i] = out[i]! * s;
    }
    return out;
  },
};
