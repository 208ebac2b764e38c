/**
 * Child side of a streamed tensor merge (request `merge-file`, see types.ts): the tensors never
 * cross the IPC pipe. The child reads the base and expert tensors from their safetensors files
 * (absolute offsets sent by the parent), forms the task vectors (expert − base, in float32) and
 * their input checksums from the stored bytes in one native pass per expert, runs the program on
 * them exactly as a `merge` request (execute.ts: same ops, same limits, same checks), and adds the
 * result to the base, encodes it in the output dtype and counts non-finite values in one more pass.
 * Only those bytes go back, written to a scratch file the parent names (not through the IPC
 * channel). So a program sees the same float32 task vectors, and returns the same values, whether
 * its tensor came from memory or from a checkpoint on disk.
 */
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { DTYPE_BYTES } from '../tensor/dtype.ts';
import { addEncodeInto, taskVectorInto } from '../tensor/nd-native.ts';
import { execute, type ExecuteOptions } from './execute.ts';
import type { RunOutcome, RunRequest, TensorRef } from './types.ts';

const CHUNK = 64 << 20;

/** Reusable byte buffers for reads: the base's bytes (kept until the result is encoded) and one expert's. */
let rawBase: Uint8Array = new Uint8Array(0);
let rawExpert: Uint8Array = new Uint8Array(0);
/**
 * Float32 buffers of the last tensor size (the task vectors) and the encoded output, reused
 * from tensor to tensor (a model's MLP tensors share one size): touching fresh memory costs page
 * faults. The encoded bytes are written to the request's outPath before the next request is read.
 */
let slots: Float32Array[] = [];
let encoded = new Uint8Array(0);

function slot(i: number, n: number): Float32Array {
  if (slots[0]?.length !== n) slots = [];
  return (slots[i] ??= new Float32Array(n));
}

/** The tensor's stored bytes, read into `buf` (grown when too small; the caller keeps the returned buffer). */
function readRaw(ref: TensorRef, n: number, what: string, buf: Uint8Array): { bytes: Uint8Array; buf: Uint8Array } {
  const size = DTYPE_BYTES[ref.dtype];
  if (!size || ref.byteLength !== n * size) throw new Error(`${what}: ${ref.byteLength} bytes of ${ref.dtype} for ${n} elements`);
  if (buf.byteLength < ref.byteLength) buf = new Uint8Array(ref.byteLength);
  const bytes = buf.subarray(0, ref.byteLength);
  const fd = openSync(ref.path, 'r');
  try {
    let done = 0;
    while (done < bytes.byteLength) {
      const got = readSync(fd, bytes, done, Math.min(CHUNK, bytes.byteLength - done), ref.offset + done);
      if (got === 0) throw new Error(`${what}: unexpected end of ${ref.path} at byte ${ref.offset + done}`);
      done += got;
    }
  } finally {
    closeSync(fd);
  }
  return { bytes, buf };
}

/**
 * Writes `bytes` at the start of the file at `path` (created when missing) without truncating it:
 * the parent reuses one scratch file and reads back exactly the bytes this request wrote, and
 * overwriting pages already in the page cache is cheaper than a new file per tensor.
 */
function writeAtStart(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o600);
  try {
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done, done);
  } finally {
    closeSync(fd);
  }
}

export function executeFileMerge(req: Extract<RunRequest, { type: 'merge-file' }>, opts: Pick<ExecuteOptions, 'onRetry'> = {}): RunOutcome {
  const t0 = performance.now();
  const n = req.ctx.shape.reduce((a, b) => a * b, 1);
  let base: Uint8Array;
  const taus: Float32Array[] = [];
  // each task vector's input checksum, computed in the same pass that forms it (execute checks the inputs against them after the run)
  const sums: number[] = [];
  try {
    const rb = readRaw(req.base, n, `${req.ctx.name} (base)`, rawBase);
    rawBase = rb.buf;
    base = rb.bytes;
    for (const [i, r] of req.experts.entries()) {
      const rx = readRaw(r, n, `${req.ctx.name} (expert ${i})`, rawExpert);
      rawExpert = rx.buf;
      const tau = slot(i, n);
      sums.push(taskVectorInto(tau, rx.bytes, r.dtype, base, req.base.dtype));
      taus.push(tau);
    }
  } catch (e) {
    return { ok: false, category: 'crash', message: `host error reading the tensor: ${(e as Error).message}` };
  }
  const readMs = performance.now() - t0;
  const r = execute({ type: 'merge', id: req.id, source: req.source, inputs: taus, ctx: req.ctx, limits: req.limits, testHooks: req.testHooks }, { copyResult: false, onRetry: opts.onRetry, inputSums: sums });
  if (!r.ok) return r;
  const size = DTYPE_BYTES[req.outDtype];
  if (encoded.byteLength !== n * size) encoded = new Uint8Array(n * size);
  // base + result, encoded, and the count of non-finite values in one pass
  const bad = addEncodeInto(encoded, req.outDtype, base, req.base.dtype, r.result!);
  if (bad.count > 0) {
    const message =
      req.outDtype === 'F32'
        ? `seed + merge gives ${bad.count} non-finite values (NaN/Inf) out of ${n} for ${req.ctx.name} (first at flat index ${bad.first})`
        : // an overflow of the 16-bit format, or of float32 in the sum, shows as an all-ones exponent
          `seed + merge gives ${bad.count} non-finite values (NaN/Inf, or outside the range of ${req.outDtype}) out of ${n} for ${req.ctx.name}`;
    return { ok: false, category: 'non-finite', message, ops: r.ops, elements: r.elements, ms: performance.now() - t0, cpuMs: r.cpuMs, attempts: r.attempts };
  }
  const bytes = encoded;
  // the bytes go back through a file the parent names: a large result through the IPC channel costs far more than a file in the page cache (see Sandbox.runFile)
  try {
    writeAtStart(req.outPath, bytes);
  } catch (e) {
    return { ok: false, category: 'crash', message: `host error writing the merged tensor to ${req.outPath}: ${(e as Error).message}` };
  }
  return { ok: true, bytesWritten: bytes.byteLength, ops: r.ops, elements: r.elements, ms: (r.ms ?? 0) + readMs, cpuMs: r.cpuMs, attempts: r.attempts };
}
