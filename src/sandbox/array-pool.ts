/**
 * Recycled output arrays for the sandbox child's host ops (nd.ts setArrayPool). Touching fresh
 * memory costs page faults, which on large tensors can cost more than the ops themselves (measured
 * on this project's 2-core VM: ~60 MB/s for first touches vs ~5 GB/s memcpy). So the arrays a run
 * allocated are handed out again, zeroed, to the next run (same lengths: a model's MLP tensors
 * share one size). Only the previous run's arrays are kept, so the pool never holds more than one
 * run's allocation budget (limits.maxElements). Arrays handed out in run k stay valid until run
 * k + 1 begins (the child answers each request before it reads the next).
 */
import type { ArrayPool } from '../tensor/nd.ts';

export class RunArrayPool implements ArrayPool {
  private free32 = new Map<number, Float32Array[]>();
  private free64 = new Map<number, Float64Array[]>();
  private used32: Float32Array[] = [];
  private used64: Float64Array[] = [];

  f32(n: number): Float32Array {
    const a = this.free32.get(n)?.pop();
    const out = a ? a.fill(0) : new Float32Array(n);
    this.used32.push(out);
    return out;
  }

  f32Dirty(n: number): Float32Array {
    const out = this.free32.get(n)?.pop() ?? new Float32Array(n);
    this.used32.push(out);
    return out;
  }

  f64(n: number): Float64Array {
    const a = this.free64.get(n)?.pop();
    const out = a ? a.fill(0) : new Float64Array(n);
    this.used64.push(out);
    return out;
  }

  /** Starts a run: the previous run's arrays become free; older free arrays are dropped. */
  beginRun(): void {
    this.free32 = group(this.used32);
    this.free64 = group(this.used64);
    this.used32 = [];
    this.used64 = [];
  }

  /** Bytes held (free + handed out). */
  bytes(): number {
    let n = 0;
    for (const l of [...this.free32.values(), ...this.free64.values()]) for (const a of l) n += a.byteLength;
    for (const a of [...this.used32, ...this.used64]) n += a.byteLength;
    return n;
  }
}

function group<T extends { length: number }>(arrays: T[]): Map<number, T[]> {
  const m = new Map<number, T[]>();
  for (const a of arrays) (m.get(a.length) ?? m.set(a.length, []).get(a.length)!).push(a);
  return m;
}
