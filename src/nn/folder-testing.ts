/**
 * Test helper: copies of a model folder with their weights rewritten (a tensor left out, a wrong
 * shape or dtype), to check that loaders refuse a bad folder with a clear error.
 */
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, INDEX_FILE } from '../io/checkpoint.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import type { DType } from '../tensor/dtype.ts';

export interface RawTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/**
 * Writes `dst`: the files of `src` other than its weights, and one model.safetensors with the tensors
 * of `src` (raw bytes, in order) as `edit` returns them. Returns `dst`.
 */
export function rewriteWeights(src: string, dst: string, edit: (ts: RawTensor[]) => RawTensor[]): string {
  mkdirSync(dst, { recursive: true });
  for (const f of readdirSync(src)) if (!f.endsWith('.safetensors') && f !== INDEX_FILE) copyFileSync(join(src, f), join(dst, f));
  const ck = Checkpoint.open(src);
  try {
    const ts = ck.tensorNames().map((name) => {
      const e = ck.info(name);
      return { name, dtype: e.dtype, shape: [...e.shape], data: ck.readBytes(name) };
    });
    writeSafetensors(join(dst, 'model.safetensors'), edit(ts), { format: 'pt' });
  } finally {
    ck.close();
  }
  return dst;
}
