/** Loop configuration: defaults (the paper's numbers, scaled to the tiny world) and validation. */
import { checkConfigTypes, resolveServerReload } from './config-check.ts';
import { evalKeyProtocol, evalProtocolOf, resolveEvalProtocol, type EvalProtocolKeys } from './eval-protocol.ts';
import { RANK_METRICS, type EvalProtocol, type RankMetric } from '../eval/protocol.ts';
import type { EvalServerConfig } from '../eval/served.ts';
import { parseSize } from '../io/checkpoint.ts';

export type FactoryConfig =
  | { kind: 'corpus' }
  | { kind: 'builtin'; dir: string; batchSize?: number; maxTokens?: number; maxPromptTokens?: number }
  | OpenAIFactoryConfig
  | { kind: 'llamacpp'; path: string; maxTokens?: number; maxPromptTokens?: number };

/**
 * A factory behind an OpenAI-compatible endpoint (docs/real-llm.md). `server`: the loop starts
 * `command` (MODEL = the current factory folder: `dir`, then each DPO-trained one; PORT = the url's
 * port) before it samples, checks `{url}/models`, and stops it after sampling (before `dpo.command`).
 */
export interface OpenAIFactoryConfig {
  kind: 'openai';
  url: string;
  model: string;
  maxTokens?: number;
  mode?: 'chat' | 'completions';
  concurrency?: number;
  timeoutMs?: number;
  retries?: number;
  apiKeyEnv?: string;
  extraBody?: Record<string, unknown>;
  promptStyle?: 'paper' | 'builtin';
  tokenizer?: string;
  maxPromptTokens?: number;
  server?: { command: string; dir: string; readyTimeoutSec?: number };
}

/**
 * 'dpo' (Self-Developing), 'random' and 'evolution' (controls), and two DPO variants measured against
 * them (see docs/world-v2.md, "Why DPO does not beat random"): 'dpo-novel' samples until the
 * iteration holds samplesPerIteration programs the arm has never drawn before; 'dpo-mutate' uses the
 * DPO-trained factory as the mutation operator of evolution (from iteration 2 it continues prefixes
 * of the best programs so far), also with new programs only.
 */
export type Arm = 'dpo' | 'random' | 'evolution' | 'dpo-novel' | 'dpo-mutate';

export type { EvalServerConfig } from '../eval/served.ts';
const SERVER_KEYS = ['command', 'model', 'url', 'readyTimeoutSec', 'dtype', 'concurrency', 'reload'];
export const ARMS: readonly Arm[] = ['dpo', 'random', 'evolution', 'dpo-novel', 'dpo-mutate'];
/** Arms whose factory is DPO-trained after every iteration. */
export const trainsFactory = (arm: Arm): boolean => arm === 'dpo' || arm === 'dpo-novel' || arm === 'dpo-mutate';

export interface LoopConfig {
  name: string;
  seed: number;
  /** Strategy: 'dpo' (Self-Developing), 'random' (untrained factory every iteration), 'evolution' (mutate the best programs so far, no DPO), or a DPO variant (see Arm). */
  arm: Arm;
  iterations: number;
  samplesPerIteration: number;
  /** T_t = t1 / (1 + decay·(t − 1)). */
  temperature: { t1: number; decay: number };
  pWin: number;
  pLose: number;
  /** Top programs of each earlier iteration carried forward as chosen. */
  carryTopK: number;
  /** Use programs that failed the cascade as rejected too. */
  failedAsRejected: boolean;
  tensorFilter: string;
  /**
   * `server` set: candidates are scored through an OpenAI-compatible server started per candidate (src/eval/served.ts), or with `server.reload` one per worker reloaded per candidate (served-session.ts); unset: in-process.
   * `testAll`: after the best program is chosen, also score every valid program (full dev score) on test — for measuring
   * how dev, select and test agree; never used for any choice.
   * `task`, `shots`, `shotSeed`, `train`: lm-eval's protocol (eval-protocol.ts; with `server`, maxTokens 256, calculator off and the task's shots by default).
   * `rankBy`: the metric every choice ranks programs by (promotion, pairs, evolution pool, selection, best program, baselines'
   * λ): lm-eval's gsm8k 'strict' (strict-match, `#### N`; default) or 'flexible' (flexible-extract, the last number).
   */
  eval: { devSubset: number; promoteTopFraction: number; maxTokens: number; calculator: boolean; batchSize: number; testAll: boolean; rankBy: RankMetric; server?: EvalServerConfig } & EvalProtocolKeys;
  /** Size of the final test set: the top programs by full dev (plus the best-by-selection program when it is not among them). */
  topKTest: number;
  /** How many of the top programs by full dev are re-scored on the selection split (world.select); the best program is the best of them there. */
  selectTopK: number;
  /** lossType: 'sigmoid' (DPO, the paper's) or 'ipo' (bounded target margin; builtin factory only). */
  dpo: { beta: number; lr: number; epochs: number; nllAlpha: number; batchSize: number; lossType: 'sigmoid' | 'ipo'; maxLen?: number; command?: string };
  factory: FactoryConfig;
  /** dev: screening of every candidate; select: choosing the best program among the top selectTopK by dev; test: reporting only. */
  world: { seedModel: string; experts: string[]; oodExperts: string[]; dev: string; test: string; select: string; algorithms: string; example: string };
  baselines: { lambdas: number[] };
  /** Evaluation worker processes (cascade + merge + scoring of candidates run in parallel); 1 = in the loop's own process. */
  workers: number;
  /**
   * Recursive mode (arm dpo): after iteration t the merge of its best program (by full dev, ties by
   * hash) is written to `factory/merged-iter-t/` and becomes the factory of iteration t+1 (DPO-trained
   * first when there are pairs: factory_{t+1} = DPO(merge_best_t)). The merge world (seed, experts)
   * stays fixed. Needs factory.kind builtin and a world whose seed/experts have the factory's
   * architecture and tokenizer (checked at run start). See src/loop/README.md.
   */
  recursive: boolean;
  /**
   * Set: every evaluation job goes to a BullMQ queue on Redis and is run by `selfdev worker`
   * processes anywhere (src/distributed); `workers` is then unused. Unset: local evaluation.
   */
  distributed?: DistributedConfig;
  /**
   * Set with `stream: true`: the loop's merge world streams seed and experts from their safetensors
   * files (src/merge/stream-world.ts; any model size, for eval.server scoring) instead of loading
   * them in memory; `maxMemory` (bytes, or a size such as 20GiB; default 3/4 of the RAM) is what
   * one candidate's merge may use, checked against the world's bound when it opens.
   */
  merge?: MergeModeConfig;
}

export interface MergeModeConfig {
  stream: boolean;
  maxMemory?: number | string;
  /** Multiplies the sandbox's per-element CPU-time limits of streamed merges (a slow machine; load from other processes does not need it); default 1. */
  timeScale?: number;
}

/** The `distributed:` block: where the queue is and how jobs are held (see docs/distributed.md). */
export interface DistributedConfig {
  /** redis://[:PASSWORD@]HOST:PORT/DB (or rediss:// for TLS). */
  url: string;
  /** Jobs the controller keeps in the queue at once (its drain concurrency). */
  maxInFlight: number;
  /** How long a worker's lock on a job lasts without renewal (renewed at half of it); a job whose worker is gone is redelivered after about this long. */
  lockDurationMs: number;
  /** Deliveries of a job whose worker dies or loses its lock (then the program's verdict is `crash`, as with local workers). */
  attempts: number;
}

export const DISTRIBUTED_DEFAULTS: Omit<DistributedConfig, 'url'> = { maxInFlight: 16, lockDurationMs: 30_000, attempts: 2 };
const DISTRIBUTED_KEYS = ['url', 'maxInFlight', 'lockDurationMs', 'attempts'];
/** Largest accepted values of the distributed block. */
export const DISTRIBUTED_LIMITS = { maxInFlight: 1024, lockDurationMs: 3_600_000, attempts: 10 };

/**
 * A queue URL as selfdev accepts it: redis:// or rediss://, a host, an explicit port and a database
 * number (`redis://127.0.0.1:6379/0`). Returns an error message, or null when the URL is fine.
 */
export function queueUrlProblem(url: unknown): string | null {
  if (typeof url !== 'string' || !url.trim()) return `must be a redis://HOST:PORT/DB URL, got ${JSON.stringify(url)}`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `must be a redis://HOST:PORT/DB URL, got a string that is not a URL`;
  }
  if (u.password && u.password !== '***') {
    u.password = '***'; // the checks below quote the URL: without its password
    return queueUrlProblem(u.toString());
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return `must start with redis:// or rediss://, got ${JSON.stringify(url)}`;
  if (!u.hostname) return `has no host: ${JSON.stringify(url)}`;
  if (!u.port) return `needs an explicit port (redis://HOST:PORT/DB), got ${JSON.stringify(url)}`;
  if (!/^\/\d{1,2}$/.test(u.pathname)) return `needs a database number as its path (redis://HOST:PORT/DB, e.g. /0), got ${JSON.stringify(url)}`;
  if (u.search || u.hash) return `must not have a query or fragment, got ${JSON.stringify(url)}`;
  return null;
}

/** The `distributed:` block of a config, checked, with defaults filled in (unknown keys are errors). */
export function resolveDistributed(d: unknown, where = 'config'): DistributedConfig {
  if (!isObj(d)) throw new Error(`${where}: distributed must be a mapping { url, maxInFlight?, lockDurationMs?, attempts? }, got ${JSON.stringify(d)}`);
  for (const k of Object.keys(d)) if (!DISTRIBUTED_KEYS.includes(k)) throw new Error(`${where}: unknown key distributed.${k} (known: ${DISTRIBUTED_KEYS.join(', ')})`);
  const problem = queueUrlProblem(d.url);
  if (problem) throw new Error(`${where}: distributed.url ${problem}`);
  const out = { ...DISTRIBUTED_DEFAULTS, ...d } as DistributedConfig;
  const int = (k: 'maxInFlight' | 'lockDurationMs' | 'attempts', min: number) => {
    const v = out[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > DISTRIBUTED_LIMITS[k]) throw new Error(`${where}: distributed.${k} must be an integer from ${min} to ${DISTRIBUTED_LIMITS[k]}, got ${JSON.stringify(v)}`);
  };
  int('maxInFlight', 1);
  int('lockDurationMs', 1000);
  int('attempts', 1);
  return out;
}

export const DEFAULT_CONFIG: LoopConfig = {
  name: 'selfdev',
  seed: 0,
  arm: 'dpo',
  iterations: 3,
  samplesPerIteration: 100,
  temperature: { t1: 1.2, decay: 0.2 },
  pWin: 0.03,
  pLose: 0.1,
  carryTopK: 3,
  failedAsRejected: false,
  tensorFilter: 'mlp',
  eval: { devSubset: 40, promoteTopFraction: 0.25, maxTokens: 96, calculator: true, batchSize: 32, testAll: false, rankBy: 'strict', task: 'gsm8k', shots: 0, shotSeed: 1234 },
  topKTest: 15,
  selectTopK: 10,
  dpo: { beta: 0.01, lr: 1e-5, epochs: 2, nllAlpha: 0, batchSize: 4, lossType: 'sigmoid' },
  factory: { kind: 'corpus' },
  world: { seedModel: '', experts: [], oodExperts: [], dev: 'world/bench/dev.jsonl', test: 'world/bench/test.jsonl', select: 'world/bench/select.jsonl', algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
  baselines: { lambdas: [0.2, 0.4, 0.6, 0.8, 1.0] },
  workers: 2,
  recursive: false,
};

/** What a new run records about its evaluation: the configuration its eval key hashes, and the scoring protocol (shown in the report). */
export function runEvalRecord(cfg: LoopConfig, root: string): { evalConfig: Record<string, unknown>; evalProtocol: EvalProtocol } {
  const e = cfg.eval;
  const w = cfg.world;
  return {
    // rankBy keys the evaluations only when flexible (the screening score dev_subset is the ranking metric's; strict keys stay as they were)
    evalConfig: { dev: w.dev, test: w.test, select: w.select, devSubset: e.devSubset, maxTokens: e.maxTokens, calculator: e.calculator, tensorFilter: cfg.tensorFilter, experts: w.experts, seedModel: w.seedModel, ...evalKeyProtocol(e), ...(e.rankBy === 'flexible' ? { rankBy: e.rankBy } : {}) },
    evalProtocol: evalProtocolOf(e, root, e.rankBy),
  };
}

export function temperatureAt(cfg: LoopConfig, t: number): number {
  return cfg.temperature.t1 / (1 + cfg.temperature.decay * (t - 1));
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Deep-merges `user` over the defaults and validates. Unknown keys are errors (typos). `stored`: a run's recorded config (resume). */
export function resolveConfig(user: unknown, where = 'config', opts: { stored?: boolean } = {}): LoopConfig {
  if (!isObj(user)) throw new Error(`${where}: expected a mapping at the top level`);
  const merge = (def: unknown, u: unknown, path: string): unknown => {
    if (u === undefined) return def;
    if (isObj(def) && path !== 'factory') {
      if (!isObj(u)) throw new Error(`${where}: ${path} must be a mapping`);
      for (const k of Object.keys(u)) if (!(k in def) && !(path === 'dpo' && (k === 'maxLen' || k === 'command')) && !(path === 'eval' && (k === 'server' || k === 'train')) && !(path === '' && (k === 'distributed' || k === 'merge'))) throw new Error(`${where}: unknown key ${path ? path + '.' : ''}${k}`);
      const out: Record<string, unknown> = { ...def };
      for (const k of Object.keys(u)) out[k] = merge(def[k], u[k], path ? `${path}.${k}` : k);
      return out;
    }
    return u;
  };
  const c = merge(DEFAULT_CONFIG, user, '') as LoopConfig;
  const posInt = (v: unknown, n: string) => {
    if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`${where}: ${n} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  const frac = (v: unknown, n: string) => {
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) throw new Error(`${where}: ${n} must be in (0, 1], got ${JSON.stringify(v)}`);
  };
  posInt(c.iterations, 'iterations');
  posInt(c.samplesPerIteration, 'samplesPerIteration');
  posInt(c.topKTest, 'topKTest');
  posInt(c.selectTopK, 'selectTopK');
  if (!RANK_METRICS.includes(c.eval.rankBy)) throw new Error(`${where}: eval.rankBy must be ${RANK_METRICS.map((m) => `'${m}'`).join(' or ')} (lm-eval's gsm8k strict-match or flexible-extract), got ${JSON.stringify(c.eval.rankBy)}`);
  if (typeof c.eval.testAll !== 'boolean') throw new Error(`${where}: eval.testAll must be true or false, got ${JSON.stringify(c.eval.testAll)}`);
  if (typeof c.world.select !== 'string' || !c.world.select.trim()) throw new Error(`${where}: world.select must be the path of the selection split (a GSM8k-format JSONL file, disjoint from dev and test), got ${JSON.stringify(c.world.select)}`);
  posInt(c.eval.devSubset, 'eval.devSubset');
  posInt(c.eval.maxTokens, 'eval.maxTokens');
  posInt(c.eval.batchSize, 'eval.batchSize');
  posInt(c.dpo.batchSize, 'dpo.batchSize');
  posInt(c.dpo.epochs, 'dpo.epochs');
  posInt(c.workers, 'workers');
  if (!ARMS.includes(c.arm)) throw new Error(`${where}: arm must be one of ${ARMS.join(', ')}, got ${JSON.stringify(c.arm)}`);
  if (!Number.isInteger(c.seed)) throw new Error(`${where}: seed must be an integer`);
  if (!Number.isInteger(c.carryTopK) || c.carryTopK < 0) throw new Error(`${where}: carryTopK must be a non-negative integer`);
  frac(c.pWin, 'pWin');
  frac(c.pLose, 'pLose');
  frac(c.eval.promoteTopFraction, 'eval.promoteTopFraction');
  if (c.distributed === null) delete c.distributed;
  if (c.distributed !== undefined) c.distributed = resolveDistributed(c.distributed, where);
  if (c.eval.server === null) delete c.eval.server;
  if (c.merge === null) delete c.merge;
  if (c.merge !== undefined) {
    const m = c.merge as unknown;
    if (!isObj(m)) throw new Error(`${where}: merge must be a mapping { stream, maxMemory? }`);
    for (const k of Object.keys(m)) if (!['stream', 'maxMemory', 'timeScale'].includes(k)) throw new Error(`${where}: unknown key merge.${k} (known: stream, maxMemory, timeScale)`);
    if (m.timeScale !== undefined && !(typeof m.timeScale === 'number' && m.timeScale > 0 && m.timeScale <= 1000)) throw new Error(`${where}: merge.timeScale must be a number in (0, 1000], got ${JSON.stringify(m.timeScale)}`);
    if (typeof m.stream !== 'boolean') throw new Error(`${where}: merge.stream must be true or false, got ${JSON.stringify(m.stream)}`);
    if (m.maxMemory !== undefined) {
      try {
        parseSize(m.maxMemory as string | number);
      } catch (e) {
        throw new Error(`${where}: merge.maxMemory: ${(e as Error).message}`);
      }
    }
    if (m.stream && !c.eval.server) throw new Error(`${where}: merge.stream: true writes every candidate as a checkpoint for a server to score; set eval.server too`);
    if (m.stream && c.recursive) throw new Error(`${where}: merge.stream: true with recursive: true is not supported (recursive mode turns merges into the builtin factory, an in-memory model)`);
  }
  if (c.eval.server !== undefined) {
    if (!isObj(c.eval.server)) throw new Error(`${where}: eval.server must be a mapping with command and model`);
    const s: Record<string, unknown> = { ...c.eval.server };
    c.eval.server = s as unknown as EvalServerConfig;
    for (const k of Object.keys(s)) if (!SERVER_KEYS.includes(k)) throw new Error(`${where}: unknown key eval.server.${k} (known: ${SERVER_KEYS.join(', ')})`);
    for (const k of ['command', 'model']) if (typeof s[k] !== 'string' || !(s[k] as string).trim()) throw new Error(`${where}: eval.server.${k} must be a non-empty string`);
    if (s.url !== undefined && (typeof s.url !== 'string' || !/^https?:\/\//.test(s.url))) throw new Error(`${where}: eval.server.url must be an http(s) URL (may contain $PORT), got ${JSON.stringify(s.url)}`);
    if (typeof s.url === 'string' && c.workers > 1 && !/\$\{?PORT\b/.test(s.url)) throw new Error(`${where}: eval.server.url has no $PORT, but with workers: ${c.workers} each worker starts its own server on its own port (use $PORT in url, or workers: 1)`);
    if (s.readyTimeoutSec === undefined) s.readyTimeoutSec = 600;
    if (typeof s.readyTimeoutSec !== 'number' || !(s.readyTimeoutSec > 0)) throw new Error(`${where}: eval.server.readyTimeoutSec must be a number > 0, got ${JSON.stringify(s.readyTimeoutSec)}`);
    if (s.dtype !== undefined && !['F32', 'F16', 'BF16'].includes(s.dtype as string)) throw new Error(`${where}: eval.server.dtype must be F32, F16 or BF16, got ${JSON.stringify(s.dtype)}`);
    if (s.concurrency !== undefined) posInt(s.concurrency, 'eval.server.concurrency');
    if ((s.reload = resolveServerReload(s.reload, where)) === undefined) delete s.reload;
  }
  resolveEvalProtocol(c.eval, user.eval, String(c.world.dev), where, opts.stored);
  if (!(c.temperature.t1 >= 0) || !(c.temperature.decay >= 0)) throw new Error(`${where}: temperature.t1 and temperature.decay must be >= 0`);
  if (!(c.dpo.beta > 0) || !(c.dpo.lr > 0) || !(c.dpo.nllAlpha >= 0)) throw new Error(`${where}: dpo.beta and dpo.lr must be > 0, dpo.nllAlpha >= 0`);
  if (c.dpo.lossType !== 'sigmoid' && c.dpo.lossType !== 'ipo') throw new Error(`${where}: dpo.lossType must be sigmoid or ipo, got ${JSON.stringify(c.dpo.lossType)}`);
  if (!c.world.seedModel) throw new Error(`${where}: world.seedModel is required`);
  if (!Array.isArray(c.world.experts) || c.world.experts.length === 0) throw new Error(`${where}: world.experts must list at least one model folder`);
  if (!Array.isArray(c.world.oodExperts)) throw new Error(`${where}: world.oodExperts must be a list`);
  if (!Array.isArray(c.baselines.lambdas) || c.baselines.lambdas.length === 0 || c.baselines.lambdas.some((x) => typeof x !== 'number')) throw new Error(`${where}: baselines.lambdas must be a non-empty list of numbers`);
  const f = c.factory as { kind?: unknown };
  if (!isObj(f) || !['corpus', 'builtin', 'openai', 'llamacpp'].includes(f.kind as string)) throw new Error(`${where}: factory.kind must be corpus, builtin, openai or llamacpp`);
  if (c.factory.kind === 'builtin' && !c.factory.dir) throw new Error(`${where}: factory.dir is required for the builtin factory`);
  if (c.factory.kind === 'openai' && (!c.factory.url || !c.factory.model)) throw new Error(`${where}: factory.url and factory.model are required for openai`);
  if (c.factory.kind === 'llamacpp' && !c.factory.path) throw new Error(`${where}: factory.path is required for llamacpp`);
  if (typeof c.recursive !== 'boolean') throw new Error(`${where}: recursive must be true or false, got ${JSON.stringify(c.recursive)}`);
  if (c.recursive && c.factory.kind === 'corpus') throw new Error(`${where}: recursive: true needs factory.kind: builtin (the best merged model becomes the next factory, so the factory must be a model loaded from a Hugging Face Llama folder); factory.kind corpus has no model`);
  if (c.recursive && c.factory.kind !== 'builtin') throw new Error(`${where}: recursive: true with factory.kind ${c.factory.kind} is not supported yet (the loop cannot put the merged model behind a ${c.factory.kind === 'openai' ? 'running endpoint' : 'llama.cpp model path'}); use factory.kind: builtin with a world whose seed model shares the factory's architecture and tokenizer`);
  checkConfigTypes(c, where); // every remaining field's type and range (config-check.ts)
  return c;
}
