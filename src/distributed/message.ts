/**
 * The queue's job message: what a controller puts in Redis for one evaluation and what a
 * `selfdev worker` accepts. Small JSON only (weights never travel): the loop's `EvalJob`, the
 * evaluation spec (world paths as the worker resolves them under its --root, tensor filter, eval
 * settings) and fingerprints of every file the job reads.
 *
 * The job id is a hash of the message, so the same evaluation always has the same id: re-adding it
 * (a resumed controller, a wiped broker) is harmless, and a result found under the id is the result
 * of exactly this evaluation. A worker recomputes the id and refuses a message that does not match.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { LoopConfig } from '../loop/config.ts';
import type { EvalJob, EvalSet } from '../loop/pool.ts';

export const MESSAGE_VERSION = 1;
/** Largest program text a message may carry (programs are a few KB). */
export const MAX_CODE_CHARS = 1 << 20;

const SETS: readonly EvalSet[] = ['subset', 'dev', 'select', 'test'];
const EXPERT_SETS = ['in-domain', 'ood'] as const;

/** What a worker needs besides the job to evaluate it: the parts of the run config evaluation depends on. */
export interface EvalSpec {
  /** Paths relative to the worker's --root (absolute when the controller's world lies outside its root). */
  world: { seedModel: string; experts: string[]; oodExperts: string[]; dev: string; test: string; select: string };
  tensorFilter: string;
  eval: LoopConfig['eval'];
}

/** path (as in the spec) → fingerprint of what the controller sees there. */
export type Fingerprints = Record<string, string>;

export interface JobMessage {
  v: typeof MESSAGE_VERSION;
  spec: EvalSpec;
  job: EvalJob;
  /** Fingerprints of the files this job reads (seed, its expert set, its problem file). */
  fingerprints: Fingerprints;
  /** The run's namespace (experiments: "ARM/rK"): part of the id, so the runs of an experiment never share a job; absent for a single run. */
  ns?: string;
}

/** Longest accepted namespace. */
const MAX_NS_CHARS = 200;

/** A job message that must not be executed; the reason says why. */
export class MalformedJob extends Error {
  override name = 'MalformedJob';
}

// ------------------------------------------------------------------------------ spec and ids

/** A world path as sent to workers: relative to `root` when inside it, else absolute. */
function sendPath(root: string, p: string): string {
  const abs = resolve(root, p);
  const rel = relative(root, abs);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel.split(sep).join('/') : abs;
}

/** The evaluation spec of a run config whose paths are relative to `root`. */
export function evalSpecOf(cfg: LoopConfig, root: string): EvalSpec {
  const w = cfg.world;
  const p = (x: string) => sendPath(root, x);
  return {
    world: { seedModel: p(w.seedModel), experts: w.experts.map(p), oodExperts: w.oodExperts.map(p), dev: p(w.dev), test: p(w.test), select: p(w.select) },
    tensorFilter: cfg.tensorFilter,
    // the shot pool (eval.train) is sent like the world's files, and fingerprinted like them
    eval: cfg.eval.train === undefined ? cfg.eval : { ...cfg.eval, train: p(cfg.eval.train) },
  };
}

/** JSON with object keys sorted (so a hash does not depend on key order). */
export function canonicalJson(x: unknown): string {
  return JSON.stringify(x, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v));
}

const sha256 = (s: string | Uint8Array) => createHash('sha256').update(s).digest('hex');

/** The files a job reads, as spec paths: its seed and expert models, its problem file, and the shot pool (eval.train) if any. */
export function jobFiles(spec: EvalSpec, job: EvalJob): { models: string[]; problems: string; shots?: string } {
  const experts = job.experts === 'ood' ? spec.world.oodExperts : spec.world.experts;
  const problems = job.set === 'subset' ? spec.world.dev : spec.world[job.set];
  return { models: [spec.world.seedModel, ...experts], problems, ...(spec.eval.train !== undefined ? { shots: spec.eval.train } : {}) };
}

/**
 * The job id: a hash of (program + its seed, or the baseline; eval settings; problem set; expert
 * set; fingerprints of the files read). Letters and digits only, never all digits (BullMQ's rule).
 */
export function jobIdOf(m: JobMessage): string {
  const j = m.job;
  const what = 'baseline' in j ? { baseline: j.baseline } : { program: sha256(j.code), seed: j.seed };
  const files = jobFiles(m.spec, j);
  const evalKey = { tensorFilter: m.spec.tensorFilter, eval: m.spec.eval, models: files.models, problems: files.problems };
  return 'ev' + sha256(canonicalJson({ v: m.v, what, set: j.set, experts: j.experts ?? 'in-domain', evalKey, fingerprints: m.fingerprints, ...(m.ns !== undefined ? { ns: m.ns } : {}) })).slice(0, 40);
}

/** The message for one job of a run: its spec, and fingerprints of the files it reads under `root`; `ns` the run's namespace. */
export function makeMessage(spec: EvalSpec, job: EvalJob, root: string, fp: FingerprintCache = new FingerprintCache(), ns?: string): JobMessage {
  const files = jobFiles(spec, job);
  const fingerprints: Fingerprints = {};
  for (const m of files.models) fingerprints[m] = fp.model(resolve(root, m));
  fingerprints[files.problems] = fp.file(resolve(root, files.problems));
  if (files.shots !== undefined) fingerprints[files.shots] = fp.file(resolve(root, files.shots));
  return { v: MESSAGE_VERSION, spec, job: { ...job, experts: job.experts ?? 'in-domain' }, fingerprints, ...(ns !== undefined ? { ns } : {}) };
}

// ------------------------------------------------------------------------------ fingerprints

const SAMPLES = 16;
const SAMPLE_BYTES = 4096;

/**
 * Fingerprint of a safetensors file without reading its weights whole: size, the header, and 16
 * blocks of 4 KiB spread evenly over the data (a differently trained checkpoint differs in them,
 * while the header alone is the same for every model of one architecture).
 */
function safetensorsFingerprint(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const h = createHash('sha256').update(`size ${size}\n`);
    const read = (pos: number, n: number) => {
      const b = Buffer.alloc(Math.max(0, Math.min(n, size - pos)));
      let off = 0;
      while (off < b.length) {
        const got = readSync(fd, b, off, b.length - off, pos + off);
        if (got === 0) break;
        off += got;
      }
      return b.subarray(0, off);
    };
    const lenBuf = read(0, 8);
    if (lenBuf.length < 8) throw new Error(`${path}: not a safetensors file (${size} bytes)`);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > size - 8) throw new Error(`${path}: not a safetensors file (header length ${headerLen} beyond the file's ${size} bytes)`);
    h.update(read(8, headerLen));
    const start = 8 + headerLen;
    const span = size - start;
    for (let i = 0; i < SAMPLES && span > 0; i++) h.update(read(start + Math.floor((span * i) / SAMPLES), SAMPLE_BYTES));
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}

/**
 * Fingerprints of model folders and files, cached by (path, size, mtime) so a long-lived worker or
 * controller hashes each file once.
 */
export class FingerprintCache {
  private readonly cache = new Map<string, { key: string; fp: string }>();

  private cached(path: string, compute: () => string): string {
    const st = statSync(path);
    const key = `${st.size}:${st.mtimeMs}:${st.ino}`;
    const hit = this.cache.get(path);
    if (hit && hit.key === key) return hit.fp;
    const fp = compute();
    this.cache.set(path, { key, fp });
    return fp;
  }

  /** sha256 of a whole (small) file: the problem sets. */
  file(path: string): string {
    return 'file:' + this.cached(path, () => sha256(readFileSync(path)));
  }

  /** A model folder: its JSON files (config, tokenizer, shard index) whole, each safetensors file sampled (see safetensorsFingerprint). */
  model(dir: string): string {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (e) {
      throw new Error(`${dir}: cannot read the model folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const parts = names.flatMap((n) => {
      const p = join(dir, n);
      if (n.endsWith('.safetensors')) return [`${n} ${this.cached(p, () => safetensorsFingerprint(p))}`];
      if (n.endsWith('.json')) return [`${n} ${this.cached(p, () => sha256(readFileSync(p)))}`];
      return [];
    });
    if (!parts.some((x) => x.includes('.safetensors '))) throw new Error(`${dir}: no .safetensors file in the model folder`);
    return 'model:' + sha256(parts.join('\n'));
  }
}

// ------------------------------------------------------------------------------ validation

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** A spec path: a non-empty string without NUL; relative ones must stay under the root (no `..` segment). */
function checkPath(v: unknown, what: string): string {
  if (typeof v !== 'string' || !v || v.length > 4096 || v.includes('\0')) throw new MalformedJob(`${what} must be a path, got ${JSON.stringify(v)?.slice(0, 80)}`);
  if (!isAbsolute(v) && v.split(/[\\/]/).includes('..')) throw new MalformedJob(`${what} ${JSON.stringify(v)} leaves the worker's --root (a '..' segment)`);
  return v;
}

function checkKeys(o: Record<string, unknown>, known: string[], what: string): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new MalformedJob(`${what} has an unknown key ${JSON.stringify(k)}`);
}

/**
 * Checks a message from the queue in full (shape, types, ranges, its id) before anything runs.
 * Throws MalformedJob with the reason; the message's eval settings are checked again when the
 * worker builds its config (resolveConfig).
 */
export function parseJobMessage(data: unknown, id: string | undefined): JobMessage {
  if (!isObj(data)) throw new MalformedJob(`the message is not a JSON object (${data === null ? 'null' : typeof data})`);
  checkKeys(data, ['v', 'spec', 'job', 'fingerprints', 'ns'], 'the message');
  if ('ns' in data && (typeof data.ns !== 'string' || !data.ns || data.ns.length > MAX_NS_CHARS)) throw new MalformedJob(`ns must be a non-empty string of at most ${MAX_NS_CHARS} characters, got ${JSON.stringify(data.ns)?.slice(0, 80)}`);
  if (data.v !== MESSAGE_VERSION) throw new MalformedJob(`message version ${JSON.stringify(data.v)}, this worker reads version ${MESSAGE_VERSION} (update selfdev on one side)`);
  const { spec, job, fingerprints } = data;
  if (!isObj(spec) || !isObj(spec.world) || !isObj(spec.eval)) throw new MalformedJob('spec must be an object with world and eval');
  checkKeys(spec, ['world', 'tensorFilter', 'eval'], 'spec');
  const w = spec.world;
  checkKeys(w, ['seedModel', 'experts', 'oodExperts', 'dev', 'test', 'select'], 'spec.world');
  checkPath(w.seedModel, 'spec.world.seedModel');
  for (const k of ['experts', 'oodExperts'] as const) {
    if (!Array.isArray(w[k]) || (w[k] as unknown[]).length > 256) throw new MalformedJob(`spec.world.${k} must be a list of paths`);
    (w[k] as unknown[]).forEach((p, i) => checkPath(p, `spec.world.${k}[${i}]`));
  }
  for (const k of ['dev', 'test', 'select'] as const) checkPath(w[k], `spec.world.${k}`);
  if (typeof spec.tensorFilter !== 'string' || !spec.tensorFilter) throw new MalformedJob('spec.tensorFilter must be a non-empty string');
  if (!isObj(job)) throw new MalformedJob('job must be an object');
  if (!SETS.includes(job.set as EvalSet)) throw new MalformedJob(`job.set must be one of ${SETS.join(', ')}, got ${JSON.stringify(job.set)}`);
  if (!EXPERT_SETS.includes(job.experts as (typeof EXPERT_SETS)[number])) throw new MalformedJob(`job.experts must be in-domain or ood, got ${JSON.stringify(job.experts)}`);
  if ('baseline' in job) {
    checkKeys(job, ['baseline', 'set', 'experts'], 'job');
    const b = job.baseline;
    if (!(b === 'seed' || (isObj(b) && Object.keys(b).length === 1 && typeof b.lambda === 'number' && Number.isFinite(b.lambda)))) throw new MalformedJob(`job.baseline must be "seed" or { lambda: NUMBER }, got ${JSON.stringify(b)?.slice(0, 80)}`);
  } else {
    checkKeys(job, ['code', 'seed', 'set', 'experts'], 'job');
    if (typeof job.code !== 'string' || !job.code) throw new MalformedJob('job.code must be the program text');
    if (job.code.length > MAX_CODE_CHARS) throw new MalformedJob(`job.code has ${job.code.length} characters, more than ${MAX_CODE_CHARS}`);
    if (!Number.isInteger(job.seed) || (job.seed as number) < 0 || (job.seed as number) > 0xffffffff) throw new MalformedJob(`job.seed must be an integer from 0 to 2^32-1, got ${JSON.stringify(job.seed)}`);
  }
  if (job.experts === 'ood' && (w.oodExperts as unknown[]).length === 0) throw new MalformedJob('an out-of-domain job, but spec.world.oodExperts is empty');
  if (!isObj(fingerprints)) throw new MalformedJob('fingerprints must be an object');
  const m = data as unknown as JobMessage;
  if (spec.eval.train !== undefined) checkPath(spec.eval.train, 'spec.eval.train');
  const files = jobFiles(m.spec, m.job);
  const read = [...files.models, files.problems, ...(files.shots !== undefined ? [files.shots] : [])];
  for (const f of read) if (typeof fingerprints[f] !== 'string') throw new MalformedJob(`fingerprints has no entry for ${f}`);
  checkKeys(fingerprints, read, 'fingerprints');
  if (id !== undefined && jobIdOf(m) !== id) throw new MalformedJob(`the job id ${id} does not match its content (expected ${jobIdOf(m)})`);
  return m;
}

/**
 * Compares the message's fingerprints with the files under `root`. Returns null when all match,
 * else the first mismatch as a sentence for the user.
 */
export function fingerprintMismatch(m: JobMessage, root: string, fp: FingerprintCache): string | null {
  const files = jobFiles(m.spec, m.job);
  const check = (p: string, kind: 'model' | 'file'): string | null => {
    const abs = resolve(root, p);
    let mine: string;
    try {
      mine = kind === 'model' ? fp.model(abs) : fp.file(abs);
    } catch (e) {
      return `${p} (${abs} under --root ${root}): ${(e as Error).message}`;
    }
    if (mine !== m.fingerprints[p]) return `${p} resolves to ${abs} under --root ${root}, whose ${kind === 'model' ? 'model files differ' : 'content differs'} from the controller's (fingerprint ${mine.slice(0, 18)}…, expected ${m.fingerprints[p]!.slice(0, 18)}…)`;
    return null;
  };
  for (const p of files.models) {
    const r = check(p, 'model');
    if (r) return r;
  }
  return check(files.problems, 'file') ?? (files.shots !== undefined ? check(files.shots, 'file') : null);
}
