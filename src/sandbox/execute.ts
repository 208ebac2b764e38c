/**
 * Runs ONE request in a fresh isolated-vm isolate (inside the child process, see runner.ts).
 * Checks the result (shape, finiteness) and that no input changed, and classifies failures.
 */
import ivm from 'isolated-vm';
import { NDArray, fmtShape, setArrayPool } from '../tensor/nd.ts';
import { checksum32, countNonFinite } from '../tensor/nd-native.ts';
import { RunArrayPool } from './array-pool.ts';
import { CpuBudget, firstWallMs, nextWallMs } from './cpu-time.ts';
import { hostOp, newOpState, register, type OpState } from './host-ops.ts';
import { PRELUDE } from './prelude.ts';
import { DEFAULT_LIMITS, type FailureCategory, type RunOutcome, type RunRequest, type SandboxLimits } from './types.ts';

const MAX_SOURCE = 200_000;

function checksum(a: Float32Array): number {
  return checksum32(a);
}

function classifyThrown(e: unknown, st: OpState | null): { category: FailureCategory; message: string } {
  if (st?.fatal) return { category: st.fatal.category, message: st.fatal.message };
  const msg = e instanceof Error ? e.message : String(e);
  if (/timed out/i.test(msg)) return { category: 'timeout', message: `the program used more than its CPU-time limit of ${st?.limits.timeoutMs ?? '?'} ms (infinite loop, or too much work)` };
  if (/memory limit|allocation failed|Invalid string length|Invalid array length|out of memory/i.test(msg))
    return { category: 'memory', message: `the program ran out of memory (${msg}); do not build large JS arrays or strings` };
  return { category: 'runtime', message: msg };
}

function parseProto(s: unknown): { kind: string; message?: string; id?: number; json?: string } | null {
  if (typeof s !== 'string' || s.length > 2_000_000) return null;
  try {
    const v = JSON.parse(s) as unknown;
    if (v && typeof v === 'object' && typeof (v as { kind?: unknown }).kind === 'string') return v as { kind: string };
  } catch {
    /* fall through */
  }
  return null;
}

function fail(category: FailureCategory, message: string, st: OpState | null, t0: number): RunOutcome {
  const cpuMs = st?.cpu.usedMs();
  if (st?.fatal && category !== 'syntax') return { ok: false, category: st.fatal.category, message: st.fatal.message, ops: st.ops, elements: st.elements, ms: performance.now() - t0, cpuMs };
  return { ok: false, category, message: message.length > 1000 ? message.slice(0, 1000) + '...' : message, ops: st?.ops, elements: st?.elements, ms: performance.now() - t0, cpuMs };
}

interface Warm {
  iso: ivm.Isolate;
  context: ivm.Context;
  load: ivm.Reference<(s: string) => string>;
  call: ivm.Reference<(s: string) => string>;
  holder: { st: OpState | null };
  memoryMb: number;
}

/** A fresh isolate with the prelude installed; it has never run any program code. */
function warmIsolate(memoryMb: number): Warm {
  const iso = new ivm.Isolate({ memoryLimit: Math.max(8, memoryMb) });
  const holder: { st: OpState | null } = { st: null };
  const context = iso.createContextSync();
  context.global.setSync(
    '__hostOp',
    new ivm.Callback((op: unknown, args: unknown) => {
      if (!holder.st) throw new Error('no active run');
      return hostOp(holder.st, op, args);
    }),
  );
  const sys = iso.compileScriptSync(PRELUDE, { filename: 'prelude.js' }).runSync(context, { timeout: 5000, reference: true }) as ivm.Reference<Record<string, unknown>>;
  const load = sys.getSync('load', { reference: true }) as ivm.Reference<(s: string) => string>;
  const call = sys.getSync('call', { reference: true }) as ivm.Reference<(s: string) => string>;
  return { iso, context, load, call, holder, memoryMb };
}

let spare: Warm | null = null;

/**
 * Prepares the isolate for the NEXT request while the process is idle (hides isolate creation,
 * ~5 ms, from the per-candidate latency). Each isolate still serves exactly one request.
 */
export function prewarm(memoryMb: number): void {
  if (spare && spare.memoryMb === memoryMb) return;
  dispose(spare);
  spare = null;
  try {
    spare = warmIsolate(memoryMb);
  } catch {
    spare = null;
  }
}

function take(memoryMb: number): Warm {
  const w = spare;
  spare = null;
  if (w && w.memoryMb === memoryMb && !w.iso.isDisposed) return w;
  dispose(w);
  return warmIsolate(memoryMb);
}

function dispose(w: Warm | null): void {
  if (!w) return;
  w.holder.st = null;
  try {
    w.context.release();
  } catch {
    /* isolate already gone */
  }
  try {
    if (!w.iso.isDisposed) w.iso.dispose();
  } catch {
    /* already disposed */
  }
}

/** What execute() runs (merge-file requests are read from disk first, by file-merge.ts). */
export type ExecRequest = Exclude<RunRequest, { type: 'merge-file' }>;

export interface ExecuteOptions {
  /** false: hand back the result tensor's own array instead of a compact copy (the caller only reads it before the next request) */
  copyResult?: boolean;
  /** called before each retry of a run starved of CPU by machine load (attempt = the coming one, from 2) */
  onRetry?: (attempt: number, wallMs: number) => void;
  /** the inputs' checksums (checksum32), when the caller computed them while forming the inputs (file-merge.ts); else computed here */
  inputSums?: readonly number[];
}

const pool = new RunArrayPool();

/** An attempt that hit its wall timeout having used less CPU than its limit: not a verdict. */
interface Starved {
  starved: true;
  cpuMs: number;
}

/**
 * Runs one request. The time limit is CPU time (see cpu-time.ts): an attempt starved of CPU by
 * other load is re-run from scratch, in a fresh isolate, with a larger wall timeout.
 */
export function execute(req: ExecRequest, opts: ExecuteOptions = {}): RunOutcome {
  const t0 = performance.now();
  const limits: SandboxLimits = req.limits;
  if (typeof req.source !== 'string' || req.source.length > MAX_SOURCE) return fail('syntax', `source must be a string of at most ${MAX_SOURCE} characters`, null, t0);
  const inputSums: number[] = [];
  if (req.type === 'merge')
    for (const [i, x] of req.inputs.entries()) {
      if (x.length !== req.ctx.shape.reduce((a, b) => a * b, 1)) return fail('crash', `host error: input of ${x.length} elements for shape ${fmtShape(req.ctx.shape)}`, null, t0);
      inputSums.push(opts.inputSums?.[i] ?? checksum(x));
    }
  const factor = limits.backstopFactor ?? DEFAULT_LIMITS.backstopFactor;
  let wallMs = firstWallMs(limits.timeoutMs);
  for (let attempt = 1; ; attempt++) {
    const r = attemptOnce(req, opts, wallMs, inputSums, t0);
    if (!('starved' in r)) return { ...r, attempts: attempt };
    const next = nextWallMs(wallMs, r.cpuMs, limits.timeoutMs, factor);
    if (next === null)
      return {
        ...fail('timeout', `the program did not finish within the wall-clock backstop of ${wallMs} ms (${factor}× its CPU-time limit of ${limits.timeoutMs} ms) and had used only ${Math.round(r.cpuMs)} ms of CPU: the machine is too loaded (${attempt} attempts)`, null, t0),
        cpuMs: r.cpuMs,
        attempts: attempt,
      };
    wallMs = next;
    opts.onRetry?.(attempt + 1, wallMs);
  }
}

/** One run of the request in a fresh isolate with wall timeout `wallMs` (from the program's start). */
function attemptOnce(req: ExecRequest, opts: ExecuteOptions, wallMs: number, inputSums: number[], t0: number): RunOutcome | Starved {
  const limits: SandboxLimits = req.limits;
  const w = take(limits.memoryMb);
  const iso = w.iso;
  pool.beginRun(); // the previous run's arrays (results included) are reused from here on
  setArrayPool(pool);
  try {
    try {
      iso.compileScriptSync(req.source, { filename: 'algorithm.js' }).release();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const m = /\[algorithm\.js:(\d+):(\d+)\]/.exec(msg);
      return fail('syntax', m ? `${msg.replace(/\s*\[algorithm\.js:\d+:\d+\]/, '')} at line ${m[1]}:${m[2]}` : msg, null, t0);
    }
    if (req.type === 'check') return { ok: true, ms: performance.now() - t0 };

    const seed = req.type === 'merge' ? req.ctx.seed : req.seed;
    const state = newOpState(seed, limits, req.testHooks === true);
    const ids: number[] = [];
    if (req.type === 'merge') for (const x of req.inputs) ids.push(register(state, new NDArray(x, req.ctx.shape)));
    w.holder.st = state;
    const { load, call } = w;
    // the program's CPU budget and its attempt's wall timeout start here
    state.cpu = new CpuBudget(limits.timeoutMs);
    const tA = performance.now();
    const remaining = (): number => Math.max(1, Math.round(wallMs - (performance.now() - tA)));
    const thrown = (e: unknown): RunOutcome | Starved => {
      const c = classifyThrown(e, state);
      if (c.category === 'timeout' && !state.fatal) {
        // isolated-vm's wall timeout: a verdict only if the program really used its CPU limit
        const cpuMs = state.cpu.usedMs();
        if (cpuMs < limits.timeoutMs) return { starved: true, cpuMs };
      }
      return fail(c.category, c.message, state, t0);
    };

    let r: unknown;
    try {
      r = load.applySync(undefined, [req.source], { timeout: remaining() });
    } catch (e) {
      return thrown(e);
    }
    let p = parseProto(r);
    if (!p) return fail('runtime', 'the program tampered with the sandbox runtime (bad load response)', state, t0);
    if (p.kind === 'error') return fail(/out of memory|Invalid string length|Invalid array length/.test(p.message ?? '') ? 'memory' : 'runtime', `error while loading the program: ${p.message}`, state, t0);

    const payload =
      req.type === 'merge'
        ? { entry: 'merge', ids, shapes: req.inputs.map(() => req.ctx.shape), ctx: req.ctx }
        : { entry: 'prepare', stats: req.stats, numModels: req.numModels, seed: req.seed };
    try {
      r = call.applySync(undefined, [JSON.stringify(payload)], { timeout: remaining() });
    } catch (e) {
      return thrown(e);
    }
    const cpuMs = state.cpu.usedMs();
    p = parseProto(r);
    if (!p) return fail('runtime', 'the program tampered with the sandbox runtime (bad call response)', state, t0);
    const entry = req.type === 'merge' ? 'merge' : 'prepare';
    if (p.kind === 'no-entry')
      return fail('no-entry-point', `the program must define function ${entry}(${entry === 'merge' ? 'taskVectors, ctx' : 'stats'}) at top level (found ${p.message})`, state, t0);
    if (p.kind === 'error') {
      const msg = p.message ?? '';
      return fail(/out of memory|Invalid string length|Invalid array length|allocation failed/.test(msg) ? 'memory' : 'runtime', `${entry} threw ${msg}`, state, t0);
    }
    if (p.kind === 'bad-return') return fail('bad-return', p.message ?? 'bad return value', state, t0);
    if (state.fatal) return fail(state.fatal.category, state.fatal.message, state, t0);

    for (let i = 0; i < ids.length; i++)
      if (checksum(state.tensors.get(ids[i]!)!.data) !== inputSums[i]) return fail('crash', `host bug: input tensor ${i} was modified`, state, t0);

    if (req.type === 'prepare') {
      if (p.kind !== 'json' || typeof p.json !== 'string') return fail('runtime', 'the program tampered with the sandbox runtime', state, t0);
      if (p.json.length > 1_000_000) return fail('bad-return', `prepare returned ${p.json.length} characters of JSON; keep the state under 1 MB`, state, t0);
      return { ok: true, stateJson: p.json, ops: state.ops, elements: state.elements, ms: performance.now() - t0, cpuMs };
    }
    const out = p.kind === 'tensor' && typeof p.id === 'number' ? state.tensors.get(p.id) : undefined;
    if (!out) return fail('runtime', 'the program tampered with the sandbox runtime (unknown result handle)', state, t0);
    const want = req.ctx.shape;
    if (out.shape.length !== want.length || out.shape.some((d, i) => d !== want[i]))
      return fail('bad-shape', `merge returned shape ${fmtShape(out.shape)} for a tensor of shape ${fmtShape(want)}`, state, t0);
    const { count: bad, first: firstBad } = countNonFinite(out.data);
    if (bad > 0)
      return fail('non-finite', `merge returned ${bad} non-finite values (NaN/Inf) out of ${out.numel} for ${req.ctx.name} (first at flat index ${firstBad}); guard divisions and logs with an epsilon`, state, t0);
    const result = opts.copyResult === false ? out.data : new Float32Array(out.data); // a compact copy (inputs stay untouched)
    return { ok: true, result, ops: state.ops, elements: state.elements, ms: performance.now() - t0, cpuMs };
  } finally {
    setArrayPool(null);
    dispose(w);
  }
}
