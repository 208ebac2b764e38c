/**
 * Helpers of the bad-input tests (test/bad-input.test.ts) and the property-based fuzz suite
 * (test/fuzz/*.test.ts): the CLI run as a child process with a timeout and a heap cap, content
 * hashes of input trees (inputs must never change), and the two outcomes every command must end in:
 * exit 0 with a complete output, or a non-zero exit with one line naming the problem and nothing
 * left behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeLlamaCheckpoint } from '../../src/io/testing.ts';
import { Tokenizer } from '../../src/nn/tokenizer.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(REPO, 'bin', 'selfdev.mjs');

/** Cases per property: SELFDEV_FUZZ_RUNS (the long run) or the CI default of the property. */
export function fuzzRuns(ciDefault: number): number {
  const n = Number(process.env.SELFDEV_FUZZ_RUNS);
  return Number.isInteger(n) && n > 0 ? n : ciDefault;
}
/** The fast-check seed: SELFDEV_FUZZ_SEED, else fixed (CI is reproducible). */
export function fuzzSeed(salt: number): number {
  const s = Number(process.env.SELFDEV_FUZZ_SEED);
  return (Number.isInteger(s) ? s : 20250) + salt;
}

/**
 * fast-check options of a property: `ciRuns` cases (SELFDEV_FUZZ_RUNS overrides), seeded, no
 * shrinking (each case runs the CLI: report the first failing case as found), the error in the
 * report; SELFDEV_FUZZ_SECONDS bounds a property's time (a long run stops cleanly after it).
 */
export function fuzzOptions(ciRuns: number, salt: number): { numRuns: number; seed: number; endOnFailure: boolean; includeErrorInReport: boolean; interruptAfterTimeLimit?: number; markInterruptAsFailure: boolean } {
  const seconds = Number(process.env.SELFDEV_FUZZ_SECONDS);
  return {
    numRuns: fuzzRuns(ciRuns),
    seed: fuzzSeed(salt),
    endOnFailure: true,
    includeErrorInReport: true,
    ...(seconds > 0 ? { interruptAfterTimeLimit: seconds * 1000 } : {}),
    markInterruptAsFailure: false,
  };
}

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
  args: string[];
}

/** Runs `selfdev ARGS` as a child with a heap cap (MB) and a timeout (then SIGKILL). */
export function runCli(args: string[], o: { timeoutMs?: number; heapMb?: number; cwd?: string } = {}): CliResult {
  const t0 = performance.now();
  const env = { ...process.env };
  delete env.SELFDEV_DEBUG;
  const r = spawnSync(process.execPath, [`--max-old-space-size=${o.heapMb ?? 384}`, BIN, ...args], {
    encoding: 'utf8',
    timeout: o.timeoutMs ?? 60_000,
    killSignal: 'SIGKILL',
    cwd: o.cwd ?? REPO,
    env,
    maxBuffer: 16 << 20,
  });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut, ms: performance.now() - t0, args };
}

const INTERNAL = /is not a function|is not iterable|Cannot read propert|Cannot convert|Invalid typed array length|Invalid array length|Array buffer allocation failed|Maximum call stack|heap out of memory|undefined is not|of undefined|of null|\bNaN\b.*(?:length|size)|TypeError|RangeError|ReferenceError|SyntaxError: Unexpected token/;

function describe(r: CliResult): string {
  return `selfdev ${r.args.join(' ')}\nstatus ${r.status} signal ${r.signal}${r.timedOut ? ' TIMED OUT' : ''} (${r.ms.toFixed(0)} ms)\nstderr: ${r.stderr.slice(-2000)}\nstdout: ${r.stdout.slice(-500)}`;
}

/** Lines of stderr that are not notes or warnings. */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '' && !/^(warning|note): /.test(l) && !l.startsWith('\r') && !/^\s*\r/.test(l));
}

/**
 * A clean refusal: exited by itself with status 1 or 2 (no signal, no timeout), and stderr holds
 * exactly one line `selfdev CMD: …` (besides notes / warnings) that is not an internal error and,
 * when `re` is given, matches it.
 */
export function assertCleanFailure(r: CliResult, re?: RegExp): string {
  assert.ok(!r.timedOut, `timed out\n${describe(r)}`);
  assert.equal(r.signal, null, `killed by a signal\n${describe(r)}`);
  assert.ok(r.status === 1 || r.status === 2, `expected exit 1 or 2\n${describe(r)}`);
  const lines = errorLines(r.stderr);
  assert.equal(lines.length, 1, `expected one error line\n${describe(r)}`);
  const line = lines[0]!;
  assert.match(line, /^selfdev [a-z-]+: \S/, `not a selfdev error line\n${describe(r)}`);
  assert.doesNotMatch(line, INTERNAL, `an internal error reached the user\n${describe(r)}`);
  if (re) assert.match(line, re, describe(r));
  return line;
}

/** Exit 0, no signal, no timeout. */
export function assertSuccess(r: CliResult): void {
  assert.ok(!r.timedOut, `timed out\n${describe(r)}`);
  assert.equal(r.signal, null, `killed by a signal\n${describe(r)}`);
  assert.equal(r.status, 0, describe(r));
}

/** Either outcome, with nothing internal leaking out. Returns whether it succeeded. */
export function assertCleanOutcome(r: CliResult): boolean {
  if (r.status === 0 && !r.timedOut && r.signal === null) return true;
  assertCleanFailure(r);
  return false;
}

/** A content hash of a file or folder tree (names, kinds, bytes, symlink targets). */
export function hashTree(path: string): string {
  const h = createHash('sha256');
  const walk = (p: string, rel: string) => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      h.update(`missing ${rel}\n`);
      return;
    }
    if (st.isSymbolicLink()) h.update(`link ${rel} ${readlinkSync(p)}\n`);
    else if (st.isDirectory()) {
      h.update(`dir ${rel}\n`);
      for (const n of readdirSync(p).sort()) walk(join(p, n), `${rel}/${n}`);
    } else if (st.isFile()) h.update(`file ${rel} ${st.size}\n`).update(readFileSync(p));
    else h.update(`other ${rel} ${st.mode}\n`);
  };
  walk(path, '.');
  return h.digest('hex');
}

/** Whether `out` or a temp sibling of it (`out.tmp-…`, `out.old-…`, `.out.tmp-…`) exists. */
export function leftovers(out: string): string[] {
  const dir = dirname(out);
  const base = basename(out);
  const found = existsSync(out) ? [out] : [];
  for (const n of existsSync(dir) ? readdirSync(dir) : []) {
    if (n.startsWith(`${base}.tmp-`) || n.startsWith(`${base}.old-`) || n.startsWith(`.${base}.tmp-`)) found.push(join(dir, n));
  }
  return found;
}

/** The byte-level BPE tokenizer files of the builtin engine (259 tokens) written into `dir`. */
export function writeTokenizer(dir: string): void {
  new Tokenizer().save(dir);
}

/** A tiny Llama checkpoint with the engine's tokenizer (vocab 259), for merges. */
export function makeMergeModel(dir: string, seed: number, from?: string): void {
  makeLlamaCheckpoint(dir, { layers: 2, hidden: 16, intermediate: 32, vocab: 259, heads: 4, kvHeads: 2, dtype: 'BF16', seed, ...(from ? { perturb: { from, scale: 0.05 } } : {}) });
  writeTokenizer(dir);
}

/**
 * A model the built-in engine runs (eval, serve, export-gguf): a 3-layer Llama (hidden 32, 4 heads of
 * 8, vocab 259, bf16) with the engine's byte-level tokenizer. Made here rather than copied from
 * world/models, which the world trainer rewrites. With `from`, a perturbed copy (an "expert").
 */
export function makeEngineModel(dir: string, seed: number, from?: string): string {
  makeLlamaCheckpoint(dir, { layers: 3, hidden: 32, intermediate: 64, vocab: 259, heads: 4, kvHeads: 4, dtype: 'BF16', seed, ...(from ? { perturb: { from, scale: 0.05 } } : {}) });
  writeTokenizer(dir);
  return dir;
}

/** A copy of a model folder made once by makeEngineModel (cheaper than making it again). */
export function copyModel(from: string, to: string): string {
  cpSync(from, to, { recursive: true });
  return to;
}

/** A run world in `dir`: seed, two experts, one OOD expert (engine models) and small GSM8k-format splits. */
export function makeRunWorld(dir: string): { seedModel: string; experts: string[]; oodExperts: string[]; dev: string; test: string; select: string } {
  const seedModel = makeEngineModel(join(dir, 'seed'), 1);
  const experts = [makeEngineModel(join(dir, 'e1'), 2, seedModel), makeEngineModel(join(dir, 'e2'), 3, seedModel)];
  const oodExperts = [makeEngineModel(join(dir, 'x1'), 4, seedModel)];
  const split = (name: string, k: number) => {
    const p = join(dir, `${name}.jsonl`);
    const lines = [1, 2, 3].map((i) => JSON.stringify({ question: `Sam has ${i + k} apples and gets ${i} more. How many apples does Sam have?`, answer: `${i + k} + ${i} = <<${i + k}+${i}=${2 * i + k}>>${2 * i + k}\n#### ${2 * i + k}` }));
    writeFileSync(p, lines.join('\n') + '\n');
    return p;
  };
  return { seedModel, experts, oodExperts, dev: split('dev', 10), test: split('test', 20), select: split('select', 30) };
}

export function readJson(path: string): any {
  return JSON.parse(readFileSync(path, 'utf8'));
}
export function writeJson(path: string, v: unknown): void {
  writeFileSync(path, typeof v === 'string' ? v : JSON.stringify(v, null, 2));
}
