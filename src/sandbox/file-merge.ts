/**
 * Child side of a streamed tensor merge (request `merge-file`, see types.ts): the tensors never
 * cross the IPC pipe. The child reads the base and expert tensors from their safetensors files
 * (absolute offsets sent by the parent), decodes them to float32 and forms the task vectors
 * (expert − base) with the native kernels, runs the program on them exactly as a `merge` request
 * (execute.ts: same ops, same limits, same checks), adds the result to the base and encodes it in
 * the output dtype; only those bytes go back, written to a scratch file the parent names (not through
 * the IPC channel). So a program sees the same float32 task vectors, and
 * returns the same values, whether its tensor came from memory or from a checkpoint on disk.
 */
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { DTYPE_BYTES, decodeToF32, encodeFromF32 } from '../tensor/dtype.ts';
import { axpy, sub } from '../tensor/kernels.ts';
import { countNonFinite, countOverflow16 } from '../tensor/nd-native.ts';
import { execute, type ExecuteOptions } from './execute.ts';
import type { RunOutcome, RunRequest, TensorRef } from './types.ts';

const CHUNK = 64 << 20;

/** Reusable byte buffer for reads (grown to the largest tensor seen). */
let raw = new Uint8Array(0);
/**
 * Float32 buffers of the last tensor size (base + task vectors) and the encoded output, reused
 * from tensor to tensor (a model's MLP tensors share one size): touching fresh memory costs page
 * faults. The encoded bytes are serialised by process.send before the next request is read.
 */
let slots: Float32Array[] = [];
let encoded = new Uint8Array(0);

function slot(i: number, n: number): Float32Array {
  if (slots[0]?.length !== n) slots = [];
  return (slots[i] ??= new Float32Array(n));
}

function readTensor(ref: TensorRef, n: number, what: string, into: Float32Array): Float32Array {
  const size = DTYPE_BYTES[ref.dtype];
  if (!size || ref.byteLength !== n * size) throw new Error(`${what}: ${ref.byteLength} bytes of ${ref.dtype} for ${n} elements`);
  if (raw.byteLength < ref.byteLength) raw = new Uint8Array(ref.byteLength);
  const buf = raw.subarray(0, ref.byteLength);
  const fd = openSync(ref.path, 'r');
  try {
    let done = 0;
    while (done < buf.byteLength) {
      const got = readSync(fd, buf, done, Math.min(CHUNK, buf.byteLength - done), ref.offset + done);
      if (got === 0) throw new Error(`${what}: unexpected end of ${ref.path} at byte ${ref.offset + done}`);
      done += got;
    }
  } finally {
    closeSync(fd);
  }
  return decodeToF32(buf, ref.dtype, into);
}

export function executeFileMerge(req: Extract<RunRequest, { type: 'merge-file' }>, opts: Pick<ExecuteOptions, 'onRetry'> = {}): RunOutcome {
  const t0 = performance.now();
  const n = req.ctx.shape.reduce((a, b) => a * b, 1);
  let base: Float32Array;
  const taus: Float32Array[] = [];
  try {
    base = readTensor(req.base, n, `${req.ctx.name} (base)`, slot(0, n));
    for (const [i, r] of req.experts.entries()) {
      const x = readTensor(r, n, `${req.ctx.name} (expert ${i})`, slot(i + 1, n));
      sub(x, x, base);
      taus.push(x);
    }
  } catch (e) {
    return { ok: false, category: 'crash', message: `host error reading the tensor: ${(e as Error).message}` };
  }
  const readMs = performance.now() - t0;
  const r = execute({ type: 'merge', id: req.id, source: req.source, inputs: taus, ctx: req.ctx, limits: req.limits, testHooks: req.testHooks }, { copyResult: false, onRetry: opts.onRetry });
  if (!r.ok) return r;
  axpy(base, 1, r.result!);
  if (req.outDtype === 'F32') {
    const bad = countNonFinite(base);
    if (bad.count > 0)
      return { ok: false, category: 'non-finite', message: `seed + merge gives ${bad.count} non-finite values (NaN/Inf) out of ${n} for ${req.ctx.name} (first at flat index ${bad.first})`, ops: r.ops, elements: r.elements, ms: performance.now() - t0, cpuMs: r.cpuMs, attempts: r.attempts };
  }
  const size = DTYPE_BYTES[req.outDtype];
  if (encoded.byteLength !== n * size) encoded = new Uint8Array(n * size);
  const bytes = encodeFromF32(base, req.outDtype, encoded);
  if (req.outDtype !== 'F32') {
    // one pass on the encoded bytes: an overflow of the 16-bit format, or of float32 in the sum, shows as an all-ones exponent
    const over = countOverflow16(bytes, req.outDtype);
    if (over > 0)
      return { ok: false, category: 'non-finite', message: `seed + merge gives ${over} non-finite values (NaN/Inf, or outside the range of ${req.outDtype}) out of ${n} for ${req.ctx.name}`, ops: r.ops, elements: r.elements, ms: performance.now() - t0, cpuMs: r.cpuMs, attempts: r.attempts };
  }
  // the bytes go back through a file the parent names: a large result through the IPC channel costs far more than a file in the page cache (see Sandbox.runFile)
  try {
    writeFileSync(req.outPath, bytes);
  } catch (e) {
    return { ok: false, category: 'crash', message: `host error writing the merged tensor to ${req.outPath}: ${(e as Error).message}` };
  }
  return { ok: true, bytesWritten: bytes.byteLength, ops: r.ops, elements: r.elements, ms: (r.ms ?? 0) + readMs, cpuMs: r.cpuMs, attempts: r.attempts };
}
