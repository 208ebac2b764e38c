// The run database: everything a Self-Developing run produces, in `runDir/run.sqlite`.
//
// Durability: WAL journal + synchronous=FULL. Every write method is one transaction; once it returns,
// its rows survive kill -9 of this process (and power loss, thanks to FULL). The schema and its
// identity rules are documented in schema.ts.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from './sqlite.ts';
import type { Database } from './sqlite.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';

export const DB_FILE = 'run.sqlite';

// ---------------------------------------------------------------- types

export type RunStatus = 'running' | 'done' | 'failed' | 'interrupted';
export type IterationStatus = 'sampling' | 'evaluating' | 'training' | 'done' | 'failed';
export type Origin = 'factory' | 'seed' | 'mutation' | 'carry';
/** 'ok' or a failure category of the validation cascade (open set; these are the usual ones). */
export type Verdict =
  | 'ok'
  | 'syntax'
  | 'runtime'
  | 'timeout'
  | 'memory'
  | 'op-limit'
  | 'bad-shape'
  | 'non-finite'
  | 'no-entry'
  | (string & {});
export type ExpertSet = 'in-domain' | 'ood';

export interface RunInfo {
  name: string;
  config: unknown;
  seed: number;
  /** The evaluation configuration; its hash becomes the run's default eval key. */
  evalConfig: unknown;
  selfdevVersion?: string;
}

export interface RunRecord {
  name: string;
  config: unknown;
  seed: number;
  evalKey: string;
  status: RunStatus;
  selfdevVersion: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface IterationStart {
  t: number;
  arm?: string;
  repeatIndex?: number;
  temperature?: number | null;
  nTarget?: number | null;
}

export interface IterationRecord {
  id: number;
  arm: string;
  repeatIndex: number;
  t: number;
  temperature: number | null;
  status: IterationStatus;
  nTarget: number | null;
  factoryCheckpoint: string | null;
  timings: Record<string, number>;
  startedAt: string;
  finishedAt: string | null;
  /** The factory this iteration sampled from (see schema.ts, migration 2); null before it was recorded. */
  sampledFrom: string | null;
  /** Recursive mode: folder (relative to the run) with the merge of this iteration's best program. */
  mergedCheckpoint: string | null;
  /** Recursive mode: the program whose merge is in mergedCheckpoint. */
  mergedProgram: string | null;
}

export interface SampleInput {
  iterationId: number;
  code: string;
  parentHash?: string | null;
  origin?: Origin;
  /** Defaults to the iteration's temperature. */
  temperature?: number | null;
}

export interface SampleResult {
  sampleId: number;
  seq: number;
  hash: string;
  /** False when this code (after normalisation) was already in the database. */
  newProgram: boolean;
}

export interface ProgramRecord {
  hash: string;
  code: string;
  firstSeenAt: string;
  /** The first sampling event of this program. */
  firstSample: { sampleId: number; iterationId: number; t: number; arm: string; repeatIndex: number; origin: Origin; parentHash: string | null; temperature: number | null } | null;
}

export interface EvaluationInput {
  hash: string;
  /** Defaults to the run's eval key. */
  evalKey?: string;
  verdict?: Verdict;
  message?: string | null;
  devSubset?: number | null;
  devStrict?: number | null;
  devFlex?: number | null;
  testStrict?: number | null;
  testFlex?: number | null;
  /** Scores on the selection split (schema migration 3). */
  selectStrict?: number | null;
  selectFlex?: number | null;
  families?: Record<string, number> | null;
  sandboxMs?: number | null;
  mergeMs?: number | null;
  evalMs?: number | null;
}

export interface EvaluationRecord {
  hash: string;
  evalKey: string;
  verdict: Verdict;
  message: string | null;
  devSubset: number | null;
  devStrict: number | null;
  devFlex: number | null;
  testStrict: number | null;
  testFlex: number | null;
  selectStrict: number | null;
  selectFlex: number | null;
  families: Record<string, number> | null;
  sandboxMs: number | null;
  mergeMs: number | null;
  evalMs: number | null;
  createdAt: string;
  updatedAt: string;
}

export interface LeaderboardOptions {
  arm?: string;
  repeatIndex?: number;
  evalKey?: string;
  /** Only programs sampled in this iteration (e.g. the top-3 carried forward). */
  iterationId?: number;
}

export interface LeaderboardRow {
  rank: number;
  hash: string;
  code: string;
  devSubset: number | null;
  devStrict: number | null;
  devFlex: number | null;
  testStrict: number | null;
  testFlex: number | null;
  /** Score on the selection split (only the top selectTopK by dev are scored there). */
  selectStrict: number | null;
  selectFlex: number | null;
  families: Record<string, number> | null;
  /** Iteration, arm and origin of the program's first sample (within the filter). */
  t: number;
  arm: string;
  repeatIndex: number;
  origin: Origin;
  parentHash: string | null;
}

export interface IterationSummary {
  iterationId: number;
  arm: string;
  repeatIndex: number;
  t: number;
  temperature: number | null;
  status: IterationStatus;
  nTarget: number | null;
  /** Sampling events, distinct programs, and sampling events whose program has an evaluation. */
  nSampled: number;
  nDistinct: number;
  nEvaluated: number;
  /** Sampling events whose program passed the cascade (verdict ok). */
  nValid: number;
  /** nValid / nEvaluated (null when nothing is evaluated yet). */
  passRate: number | null;
  /** Count of sampling events per verdict (including 'ok'). */
  verdicts: Record<string, number>;
  /** Screening score (dev_subset, or dev_strict when no subset was used) of each distinct valid program. */
  screenScores: number[];
  bestScreen: number | null;
  medianScreen: number | null;
  /** Best full-dev strict accuracy among this iteration's programs. */
  bestDevStrict: number | null;
  timings: Record<string, number>;
  startedAt: string;
  finishedAt: string | null;
  factoryCheckpoint: string | null;
}

export interface PendingProgram {
  hash: string;
  code: string;
  iterationId: number;
  sampleId: number;
}

export interface PendingWork {
  /** Iterations not yet done, oldest first. */
  openIterations: IterationRecord[];
  /** Distinct programs sampled in the run but without an evaluation for the eval key, in sample order. */
  unevaluated: PendingProgram[];
  /** Valid programs with a dev-subset score but no full-dev score, best subset score first. */
  awaitingFullDev: { hash: string; devSubset: number }[];
  /** The top-k (by full dev) that still lack a test score. */
  awaitingTest: { hash: string; devStrict: number }[];
  /** The top `selectTopK` (by full dev) that still lack a selection-split score (empty when selectTopK is not given). */
  awaitingSelect: { hash: string; devStrict: number }[];
}

export interface PairInput {
  chosenHash: string;
  rejectedHash: string;
  chosenScore: number;
  rejectedScore: number;
  source?: 'current' | 'carried';
}

export interface PairRecord extends Required<PairInput> {
  id: number;
  iterationId: number;
  promptHash: string;
}

export interface DpoStepInput {
  step: number;
  loss: number;
  rewardsChosen?: number | null;
  rewardsRejected?: number | null;
  margin?: number | null;
  accuracy?: number | null;
  logpsChosen?: number | null;
  logpsRejected?: number | null;
  lr?: number | null;
}

export interface DpoStepRecord {
  iterationId: number;
  step: number;
  loss: number;
  rewardsChosen: number | null;
  rewardsRejected: number | null;
  margin: number | null;
  accuracy: number | null;
  logpsChosen: number | null;
  logpsRejected: number | null;
  lr: number | null;
}

export interface BaselineInput {
  name: string;
  method: string;
  params?: unknown;
  expertSet?: ExpertSet;
  repeatIndex?: number;
  selected?: boolean;
  devStrict?: number | null;
  devFlex?: number | null;
  testStrict?: number | null;
  testFlex?: number | null;
}

export interface BaselineRecord {
  id: number;
  name: string;
  method: string;
  params: unknown;
  expertSet: ExpertSet;
  repeatIndex: number;
  selected: boolean;
  devStrict: number | null;
  devFlex: number | null;
  testStrict: number | null;
  testFlex: number | null;
}

export interface TransferInput {
  hash: string;
  sourceRank: number;
  expertSet: string;
  repeatIndex?: number;
  devStrict?: number | null;
  devFlex?: number | null;
  testStrict?: number | null;
  testFlex?: number | null;
}

export interface TransferRecord extends Required<TransferInput> {
  id: number;
}

export interface RepeatInput {
  arm: string;
  repeatIndex: number;
  seed: number;
  bestHash?: string | null;
  bestDevStrict?: number | null;
  testStrict?: number | null;
  testFlex?: number | null;
}

export interface RepeatRecord {
  arm: string;
  repeatIndex: number;
  seed: number;
  bestHash: string | null;
  bestDevStrict: number | null;
  testStrict: number | null;
  testFlex: number | null;
}

export interface FailureRecord {
  hash: string;
  verdict: string;
  message: string | null;
  code: string;
  t: number;
  arm: string;
}

// ---------------------------------------------------------------- helpers

/**
 * Normalises program text for identity: CRLF/CR → LF, trailing whitespace of each line removed,
 * leading and trailing blank lines removed. Comments and inner whitespace are kept (they can matter
 * inside strings).
 */
export function normalizeCode(code: string): string {
  return code
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.replace(/[ \t\f\v]+$/, ''))
    .join('\n')
    .replace(/^\n+/, '')
    .replace(/\n+$/, '');
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Identity of a program: sha256 of its normalised code. */
export function programHash(code: string): string {
  return sha256(normalizeCode(code));
}

/** JSON with object keys sorted recursively (stable hashing of configurations). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

/** Hash of an evaluation configuration (the second half of an evaluation's key). */
export function evalKeyOf(config: unknown): string {
  return sha256(canonicalJson(config));
}

/** Writes a file atomically (temp file in the same directory, then rename). */
export function writeFileAtomic(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

function readSelfdevVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const now = (): string => new Date().toISOString();
const nn = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

function checkScore(field: string, v: number | null | undefined): void {
  if (v === undefined || v === null) return;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`store: ${field} must be a finite number, got ${String(v)}`);
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// Row shapes as returned by SQLite.
interface IterationRow {
  id: number; arm: string; repeat_index: number; t: number; temperature: number | null; status: IterationStatus;
  n_target: number | null; factory_checkpoint: string | null; timings_json: string; started_at: string; finished_at: string | null;
  sampled_from: string | null; merged_checkpoint: string | null; merged_program: string | null;
}
interface EvaluationRow {
  program_hash: string; eval_key: string; verdict: string; message: string | null; dev_subset: number | null;
  dev_strict: number | null; dev_flex: number | null; test_strict: number | null; test_flex: number | null;
  select_strict: number | null; select_flex: number | null;
  family_json: string | null; sandbox_ms: number | null; merge_ms: number | null; eval_ms: number | null;
  created_at: string; updated_at: string;
}

function toIteration(r: IterationRow): IterationRecord {
  return {
    id: r.id, arm: r.arm, repeatIndex: r.repeat_index, t: r.t, temperature: r.temperature, status: r.status,
    nTarget: r.n_target, factoryCheckpoint: r.factory_checkpoint, timings: JSON.parse(r.timings_json) as Record<string, number>,
    startedAt: r.started_at, finishedAt: r.finished_at,
    sampledFrom: r.sampled_from, mergedCheckpoint: r.merged_checkpoint, mergedProgram: r.merged_program,
  };
}

function toEvaluation(r: EvaluationRow): EvaluationRecord {
  return {
    hash: r.program_hash, evalKey: r.eval_key, verdict: r.verdict, message: r.message, devSubset: r.dev_subset,
    devStrict: r.dev_strict, devFlex: r.dev_flex, testStrict: r.test_strict, testFlex: r.test_flex,
    selectStrict: r.select_strict ?? null, selectFlex: r.select_flex ?? null,
    families: r.family_json === null ? null : (JSON.parse(r.family_json) as Record<string, number>),
    sandboxMs: r.sandbox_ms, mergeMs: r.merge_ms, evalMs: r.eval_ms, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

// ---------------------------------------------------------------- the store

export class RunStore {
  readonly path: string;
  private readonly db: Database;

  private constructor(path: string, db: Database) {
    this.path = path;
    this.db = db;
  }

  /** Creates or opens `runDir/run.sqlite` and brings its schema up to date. */
  static open(runDir: string, options: { readonly?: boolean } = {}): RunStore {
    if (existsSync(runDir) && !statSync(runDir).isDirectory()) throw new Error(`store: run directory ${runDir} is not a directory`);
    const path = join(runDir, DB_FILE);
    if (options.readonly) {
      if (!existsSync(path)) throw new Error(`store: no run database at ${path}`);
    } else {
      mkdirSync(runDir, { recursive: true });
    }
    const db = openDatabase(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
    try {
      if (!options.readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
      }
      db.pragma('foreign_keys = ON');
      const store = new RunStore(path, db);
      if (options.readonly) store.checkVersion();
      else store.migrate();
      return store;
    } catch (e) {
      db.close();
      throw e;
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Applied schema version. */
  schemaVersion(): number {
    const hasTable = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
    if (!hasTable) return 0;
    const r = this.db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null };
    return r.v ?? 0;
  }

  private checkVersion(): number {
    const v = this.schemaVersion();
    if (v > SCHEMA_VERSION) {
      throw new Error(`store: ${this.path} has schema version ${v}, newer than this selfdev understands (${SCHEMA_VERSION}); upgrade selfdev`);
    }
    return v;
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)');
    const current = this.checkVersion();
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.prepare('INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)').run(m.version, m.description, now());
      })();
    }
  }

  /** Runs fn in one transaction (nested calls join the outer one). */
  transaction<R>(fn: () => R): R {
    if (this.db.inTransaction) return fn();
    return this.db.transaction(fn)();
  }

  /** PRAGMA integrity_check result ('ok' when healthy). */
  integrityCheck(): string {
    const rows = this.db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join('; ');
  }

  // ------------------------------------------------------------ run

  /** Creates the run row. Throws if the directory already holds a run (use getRun() to resume). */
  createRun(info: RunInfo): RunRecord {
    if (!info.name) throw new Error('store: run name must be non-empty');
    if (!Number.isInteger(info.seed)) throw new Error(`store: run seed must be an integer, got ${info.seed}`);
    const evalKey = this.addEvalConfig(info.evalConfig);
    this.transaction(() => {
      if (this.db.prepare('SELECT 1 FROM runs').get()) throw new Error(`store: ${this.path} already holds a run; open it with getRun() to resume`);
      const ts = now();
      this.db
        .prepare('INSERT INTO runs (id, name, config_json, seed, eval_key, status, selfdev_version, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(info.name, JSON.stringify(info.config ?? null), info.seed, evalKey, 'running', info.selfdevVersion ?? readSelfdevVersion(), ts, ts);
    });
    return this.run();
  }

  getRun(): RunRecord | undefined {
    const r = this.db.prepare('SELECT * FROM runs WHERE id = 1').get() as
      | { name: string; config_json: string; seed: number; eval_key: string; status: RunStatus; selfdev_version: string; created_at: string; updated_at: string; finished_at: string | null }
      | undefined;
    if (!r) return undefined;
    return {
      name: r.name, config: JSON.parse(r.config_json), seed: r.seed, evalKey: r.eval_key, status: r.status,
      selfdevVersion: r.selfdev_version, createdAt: r.created_at, updatedAt: r.updated_at, finishedAt: r.finished_at,
    };
  }

  /** The run; throws when createRun() was never called. */
  run(): RunRecord {
    const r = this.getRun();
    if (!r) throw new Error(`store: ${this.path} holds no run yet (call createRun first)`);
    return r;
  }

  setRunStatus(status: RunStatus): void {
    const ts = now();
    const finished = status === 'running' ? null : ts;
    const res = this.db.prepare('UPDATE runs SET status = ?, updated_at = ?, finished_at = ? WHERE id = 1').run(status, ts, finished);
    if (res.changes === 0) throw new Error(`store: ${this.path} holds no run yet (call createRun first)`);
  }

  /** Registers an evaluation configuration and returns its key. */
  addEvalConfig(config: unknown): string {
    const key = evalKeyOf(config);
    this.db.prepare('INSERT OR IGNORE INTO eval_configs (eval_key, config_json, created_at) VALUES (?, ?, ?)').run(key, canonicalJson(config), now());
    return key;
  }

  evalConfig(evalKey: string): unknown {
    const r = this.db.prepare('SELECT config_json FROM eval_configs WHERE eval_key = ?').get(evalKey) as { config_json: string } | undefined;
    return r ? JSON.parse(r.config_json) : undefined;
  }

  private defaultEvalKey(evalKey?: string): string {
    return evalKey ?? this.run().evalKey;
  }

  // ------------------------------------------------------------ iterations

  /**
   * Starts iteration t of an arm/repeat, or returns the existing row (resume). Status 'sampling'.
   */
  startIteration(s: IterationStart): IterationRecord {
    const arm = s.arm ?? 'dpo';
    const rep = s.repeatIndex ?? 0;
    if (!Number.isInteger(s.t) || s.t < 1) throw new Error(`store: iteration t must be an integer >= 1, got ${s.t}`);
    return this.transaction(() => {
      const existing = this.iteration(s.t, arm, rep);
      if (existing) return existing;
      this.db
        .prepare("INSERT INTO iterations (arm, repeat_index, t, temperature, status, n_target, started_at) VALUES (?, ?, ?, ?, 'sampling', ?, ?)")
        .run(arm, rep, s.t, nn(s.temperature), nn(s.nTarget), now());
      return this.iteration(s.t, arm, rep)!;
    });
  }

  iteration(t: number, arm = 'dpo', repeatIndex = 0): IterationRecord | undefined {
    const r = this.db.prepare('SELECT * FROM iterations WHERE arm = ? AND repeat_index = ? AND t = ?').get(arm, repeatIndex, t) as IterationRow | undefined;
    return r ? toIteration(r) : undefined;
  }

  iterationById(id: number): IterationRecord | undefined {
    const r = this.db.prepare('SELECT * FROM iterations WHERE id = ?').get(id) as IterationRow | undefined;
    return r ? toIteration(r) : undefined;
  }

  /** All iterations, ordered by arm ('dpo' first), repeat, t. */
  iterations(filter: { arm?: string; repeatIndex?: number } = {}): IterationRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM iterations WHERE (@arm IS NULL OR arm = @arm) AND (@rep IS NULL OR repeat_index = @rep)
         ORDER BY arm <> 'dpo', arm, repeat_index, t`,
      )
      .all({ arm: nn(filter.arm), rep: nn(filter.repeatIndex) }) as IterationRow[];
    return rows.map(toIteration);
  }

  /**
   * Updates an iteration's status and optional fields. Timings are merged into the existing map.
   * Status 'done' or 'failed' also sets finished_at.
   */
  updateIteration(id: number, u: { status?: IterationStatus; factoryCheckpoint?: string | null; timings?: Record<string, number>; sampledFrom?: string | null; mergedCheckpoint?: string | null; mergedProgram?: string | null }): IterationRecord {
    return this.transaction(() => {
      const it = this.iterationById(id);
      if (!it) throw new Error(`store: no iteration with id ${id}`);
      const timings = { ...it.timings, ...(u.timings ?? {}) };
      for (const [k, v] of Object.entries(timings)) checkScore(`timings.${k}`, v);
      const status = u.status ?? it.status;
      const finished = status === 'done' || status === 'failed' ? (it.finishedAt ?? now()) : null;
      const keep = <T>(v: T | undefined, old: T) => (v === undefined ? old : v);
      this.db
        .prepare('UPDATE iterations SET status = ?, factory_checkpoint = ?, timings_json = ?, finished_at = ?, sampled_from = ?, merged_checkpoint = ?, merged_program = ? WHERE id = ?')
        .run(status, keep(u.factoryCheckpoint, it.factoryCheckpoint), JSON.stringify(timings), finished, keep(u.sampledFrom, it.sampledFrom), keep(u.mergedCheckpoint, it.mergedCheckpoint), keep(u.mergedProgram, it.mergedProgram), id);
      return this.iterationById(id)!;
    });
  }

  // ------------------------------------------------------------ programs and samples

  /** Records one sampled program (deduplicated by normalised-code hash). */
  addSample(s: SampleInput): SampleResult {
    return this.addSamples([s])[0];
  }

  /** Records several sampled programs in one transaction, in order. */
  addSamples(list: SampleInput[]): SampleResult[] {
    return this.transaction(() => {
      const out: SampleResult[] = [];
      const insProgram = this.db.prepare('INSERT OR IGNORE INTO programs (hash, code, first_seen_at) VALUES (?, ?, ?)');
      const nextSeq = this.db.prepare('SELECT COALESCE(MAX(seq) + 1, 0) AS s FROM samples WHERE iteration_id = ?');
      const insSample = this.db.prepare(
        'INSERT INTO samples (iteration_id, seq, program_hash, parent_hash, origin, temperature, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      );
      for (const s of list) {
        if (typeof s.code !== 'string') throw new Error('store: sample code must be a string');
        const it = this.iterationById(s.iterationId);
        if (!it) throw new Error(`store: no iteration with id ${s.iterationId}`);
        if (s.parentHash && !this.programByHash(s.parentHash)) throw new Error(`store: parent program ${s.parentHash} is not in the database`);
        const hash = programHash(s.code);
        const ts = now();
        const newProgram = insProgram.run(hash, s.code, ts).changes === 1;
        const seq = (nextSeq.get(s.iterationId) as { s: number }).s;
        const r = insSample.run(s.iterationId, seq, hash, nn(s.parentHash), s.origin ?? 'factory', s.temperature === undefined ? it.temperature : s.temperature, ts);
        out.push({ sampleId: Number(r.lastInsertRowid), seq, hash, newProgram });
      }
      return out;
    });
  }

  programByHash(hash: string): ProgramRecord | undefined {
    const p = this.db.prepare('SELECT hash, code, first_seen_at FROM programs WHERE hash = ?').get(hash) as { hash: string; code: string; first_seen_at: string } | undefined;
    if (!p) return undefined;
    const s = this.db
      .prepare(
        `SELECT s.id, s.iteration_id, i.t, i.arm, i.repeat_index, s.origin, s.parent_hash, s.temperature
         FROM samples s JOIN iterations i ON i.id = s.iteration_id WHERE s.program_hash = ? ORDER BY s.id LIMIT 1`,
      )
      .get(hash) as { id: number; iteration_id: number; t: number; arm: string; repeat_index: number; origin: Origin; parent_hash: string | null; temperature: number | null } | undefined;
    return {
      hash: p.hash, code: p.code, firstSeenAt: p.first_seen_at,
      firstSample: s ? { sampleId: s.id, iterationId: s.iteration_id, t: s.t, arm: s.arm, repeatIndex: s.repeat_index, origin: s.origin, parentHash: s.parent_hash, temperature: s.temperature } : null,
    };
  }

  /** Sampling events of an iteration, in order. */
  samples(iterationId: number): { sampleId: number; seq: number; hash: string; parentHash: string | null; origin: Origin; temperature: number | null }[] {
    const rows = this.db
      .prepare('SELECT id, seq, program_hash, parent_hash, origin, temperature FROM samples WHERE iteration_id = ? ORDER BY seq')
      .all(iterationId) as { id: number; seq: number; program_hash: string; parent_hash: string | null; origin: Origin; temperature: number | null }[];
    return rows.map((r) => ({ sampleId: r.id, seq: r.seq, hash: r.program_hash, parentHash: r.parent_hash, origin: r.origin, temperature: r.temperature }));
  }

  // ------------------------------------------------------------ evaluations

  /**
   * Inserts or updates the evaluation of (hash, evalKey). Fields left undefined keep their stored
   * value (so the cascade can record the verdict first and add full-dev and test scores later).
   * The first write must give a verdict.
   */
  recordEvaluation(e: EvaluationInput): EvaluationRecord {
    const evalKey = this.defaultEvalKey(e.evalKey);
    for (const f of ['devSubset', 'devStrict', 'devFlex', 'testStrict', 'testFlex', 'selectStrict', 'selectFlex', 'sandboxMs', 'mergeMs', 'evalMs'] as const) checkScore(f, e[f]);
    if (e.families) for (const [k, v] of Object.entries(e.families)) checkScore(`families.${k}`, v);
    return this.transaction(() => {
      if (!this.programByHash(e.hash)) throw new Error(`store: program ${e.hash} is not in the database (add it with addSample first)`);
      if (this.evalConfig(evalKey) === undefined) throw new Error(`store: unknown eval key ${evalKey} (register it with addEvalConfig)`);
      const prev = this.evaluationFor(e.hash, evalKey);
      const ts = now();
      if (!prev) {
        if (!e.verdict) throw new Error(`store: first evaluation of ${e.hash} must give a verdict`);
        this.db
          .prepare(
            `INSERT INTO evaluations (program_hash, eval_key, verdict, message, dev_subset, dev_strict, dev_flex, test_strict, test_flex,
               select_strict, select_flex, family_json, sandbox_ms, merge_ms, eval_ms, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(e.hash, evalKey, e.verdict, nn(e.message), nn(e.devSubset), nn(e.devStrict), nn(e.devFlex), nn(e.testStrict), nn(e.testFlex),
            nn(e.selectStrict), nn(e.selectFlex), e.families ? JSON.stringify(e.families) : null, nn(e.sandboxMs), nn(e.mergeMs), nn(e.evalMs), ts, ts);
      } else {
        const pick = <T>(v: T | undefined, old: T): T => (v === undefined ? old : v);
        this.db
          .prepare(
            `UPDATE evaluations SET verdict = ?, message = ?, dev_subset = ?, dev_strict = ?, dev_flex = ?, test_strict = ?, test_flex = ?,
               select_strict = ?, select_flex = ?, family_json = ?, sandbox_ms = ?, merge_ms = ?, eval_ms = ?, updated_at = ? WHERE program_hash = ? AND eval_key = ?`,
          )
          .run(pick(e.verdict, prev.verdict), pick(e.message, prev.message), pick(e.devSubset, prev.devSubset), pick(e.devStrict, prev.devStrict),
            pick(e.devFlex, prev.devFlex), pick(e.testStrict, prev.testStrict), pick(e.testFlex, prev.testFlex),
            pick(e.selectStrict, prev.selectStrict), pick(e.selectFlex, prev.selectFlex), e.families === undefined ? (prev.families ? JSON.stringify(prev.families) : null) : e.families ? JSON.stringify(e.families) : null,
            pick(e.sandboxMs, prev.sandboxMs), pick(e.mergeMs, prev.mergeMs), pick(e.evalMs, prev.evalMs), ts, e.hash, evalKey);
      }
      return this.evaluationFor(e.hash, evalKey)!;
    });
  }

  evaluationFor(hash: string, evalKey?: string): EvaluationRecord | undefined {
    const r = this.db.prepare('SELECT * FROM evaluations WHERE program_hash = ? AND eval_key = ?').get(hash, this.defaultEvalKey(evalKey)) as EvaluationRow | undefined;
    return r ? toEvaluation(r) : undefined;
  }

  /** Failed programs with their messages (first sample's iteration and arm), newest first, at most limitPerVerdict per category. */
  failures(options: { limitPerVerdict?: number; evalKey?: string; arm?: string } = {}): FailureRecord[] {
    const lim = options.limitPerVerdict ?? 5;
    const rows = this.db
      .prepare(
        `WITH first AS (SELECT program_hash, MIN(id) AS sid FROM samples GROUP BY program_hash),
         f AS (SELECT e.program_hash, e.verdict, e.message, p.code, i.t, i.arm, s.id AS sid,
                 ROW_NUMBER() OVER (PARTITION BY e.verdict ORDER BY s.id DESC) AS rn
               FROM evaluations e JOIN programs p ON p.hash = e.program_hash
               JOIN first ON first.program_hash = e.program_hash JOIN samples s ON s.id = first.sid
               JOIN iterations i ON i.id = s.iteration_id
               WHERE e.eval_key = @key AND e.verdict <> 'ok' AND (@arm IS NULL OR i.arm = @arm))
         SELECT * FROM f WHERE rn <= @lim ORDER BY verdict, sid DESC`,
      )
      .all({ key: this.defaultEvalKey(options.evalKey), lim, arm: nn(options.arm) }) as { program_hash: string; verdict: string; message: string | null; code: string; t: number; arm: string }[];
    return rows.map((r) => ({ hash: r.program_hash, verdict: r.verdict, message: r.message, code: r.code, t: r.t, arm: r.arm }));
  }

  // ------------------------------------------------------------ queries

  /**
   * Best k distinct valid programs: by full-dev strict (desc), then dev flex, then dev subset; programs
   * without a full-dev score come after those with one; ties by first sampling order.
   */
  leaderboard(k: number, options: LeaderboardOptions = {}): LeaderboardRow[] {
    if (!Number.isInteger(k) || k < 0) throw new Error(`store: leaderboard k must be a non-negative integer, got ${k}`);
    return this.ranked(k, options);
  }

  /** Every valid program in leaderboard order (the leaderboard without its size limit). */
  rankedPrograms(options: LeaderboardOptions = {}): LeaderboardRow[] {
    return this.ranked(-1, options); // SQLite: a negative LIMIT means no limit
  }

  private ranked(k: number, options: LeaderboardOptions): LeaderboardRow[] {
    const rows = this.db
      .prepare(
        `WITH first AS (
           SELECT s.program_hash, MIN(s.id) AS sid FROM samples s JOIN iterations i ON i.id = s.iteration_id
           WHERE (@arm IS NULL OR i.arm = @arm) AND (@rep IS NULL OR i.repeat_index = @rep) AND (@it IS NULL OR s.iteration_id = @it)
           GROUP BY s.program_hash)
         SELECT e.*, p.code, i.t, i.arm, i.repeat_index, s.origin, s.parent_hash
         FROM first JOIN evaluations e ON e.program_hash = first.program_hash AND e.eval_key = @key
         JOIN programs p ON p.hash = first.program_hash JOIN samples s ON s.id = first.sid JOIN iterations i ON i.id = s.iteration_id
         WHERE e.verdict = 'ok' AND (e.dev_strict IS NOT NULL OR e.dev_subset IS NOT NULL)
         ORDER BY e.dev_strict IS NULL, e.dev_strict DESC, e.dev_flex DESC, e.dev_subset DESC, first.sid
         LIMIT @k`,
      )
      .all({ arm: nn(options.arm), rep: nn(options.repeatIndex), it: nn(options.iterationId), key: this.defaultEvalKey(options.evalKey), k }) as (EvaluationRow & {
      code: string; t: number; arm: string; repeat_index: number; origin: Origin; parent_hash: string | null;
    })[];
    return rows.map((r, i) => {
      const e = toEvaluation(r);
      return {
        rank: i + 1, hash: e.hash, code: r.code, devSubset: e.devSubset, devStrict: e.devStrict, devFlex: e.devFlex,
        testStrict: e.testStrict, testFlex: e.testFlex, selectStrict: e.selectStrict, selectFlex: e.selectFlex, families: e.families, t: r.t, arm: r.arm, repeatIndex: r.repeat_index,
        origin: r.origin, parentHash: r.parent_hash,
      };
    });
  }

  /**
   * Distinct programs sampled in an iteration with their evaluation (null fields when not evaluated),
   * in first-sample order. Material for building preference pairs (sort by the score you select on).
   */
  iterationPrograms(iterationId: number, evalKey?: string): { hash: string; verdict: Verdict | null; devSubset: number | null; devStrict: number | null; devFlex: number | null }[] {
    const rows = this.db
      .prepare(
        `SELECT s.program_hash AS hash, MIN(s.seq) AS seq, e.verdict, e.dev_subset, e.dev_strict, e.dev_flex
         FROM samples s LEFT JOIN evaluations e ON e.program_hash = s.program_hash AND e.eval_key = ?
         WHERE s.iteration_id = ? GROUP BY s.program_hash ORDER BY seq`,
      )
      .all(this.defaultEvalKey(evalKey), iterationId) as { hash: string; verdict: string | null; dev_subset: number | null; dev_strict: number | null; dev_flex: number | null }[];
    return rows.map((r) => ({ hash: r.hash, verdict: r.verdict, devSubset: r.dev_subset, devStrict: r.dev_strict, devFlex: r.dev_flex }));
  }

  /** Per-iteration counts and score statistics, in iterations() order. */
  iterationSummary(options: { arm?: string; repeatIndex?: number; evalKey?: string } = {}): IterationSummary[] {
    const key = this.defaultEvalKey(options.evalKey);
    const its = this.iterations(options);
    const q = this.db.prepare(
      `SELECT s.program_hash AS hash, e.verdict, e.dev_subset, e.dev_strict
       FROM samples s LEFT JOIN evaluations e ON e.program_hash = s.program_hash AND e.eval_key = ?
       WHERE s.iteration_id = ? ORDER BY s.seq`,
    );
    return its.map((it) => {
      const rows = q.all(key, it.id) as { hash: string; verdict: string | null; dev_subset: number | null; dev_strict: number | null }[];
      const verdicts: Record<string, number> = {};
      const seen = new Set<string>();
      const screen: number[] = [];
      let nEvaluated = 0;
      let nValid = 0;
      let bestDev: number | null = null;
      for (const r of rows) {
        if (r.verdict === null) continue;
        nEvaluated++;
        verdicts[r.verdict] = (verdicts[r.verdict] ?? 0) + 1;
        if (r.verdict !== 'ok') continue;
        nValid++;
        if (seen.has(r.hash)) continue;
        seen.add(r.hash);
        const sc = r.dev_subset ?? r.dev_strict;
        if (sc !== null) screen.push(sc);
        if (r.dev_strict !== null && (bestDev === null || r.dev_strict > bestDev)) bestDev = r.dev_strict;
      }
      return {
        iterationId: it.id, arm: it.arm, repeatIndex: it.repeatIndex, t: it.t, temperature: it.temperature, status: it.status,
        nTarget: it.nTarget, nSampled: rows.length, nDistinct: new Set(rows.map((r) => r.hash)).size, nEvaluated, nValid,
        passRate: nEvaluated === 0 ? null : nValid / nEvaluated, verdicts, screenScores: screen,
        bestScreen: screen.length ? Math.max(...screen) : null, medianScreen: median(screen), bestDevStrict: bestDev,
        timings: it.timings, startedAt: it.startedAt, finishedAt: it.finishedAt, factoryCheckpoint: it.factoryCheckpoint,
      };
    });
  }

  /**
   * What a resumed loop still has to do. `topK` is the size of the final test set (15 in the paper);
   * `selectTopK` the number of top programs by full dev re-scored on the selection split.
   */
  pendingWork(options: { topK?: number; selectTopK?: number; evalKey?: string; arm?: string; repeatIndex?: number } = {}): PendingWork {
    const key = this.defaultEvalKey(options.evalKey);
    const openIterations = this.iterations(options).filter((i) => i.status !== 'done' && i.status !== 'failed');
    const unevaluated = (
      this.db
        .prepare(
          `SELECT s.program_hash AS hash, p.code, s.iteration_id, MIN(s.id) AS sid
           FROM samples s JOIN programs p ON p.hash = s.program_hash JOIN iterations i ON i.id = s.iteration_id
           WHERE (@arm IS NULL OR i.arm = @arm) AND (@rep IS NULL OR i.repeat_index = @rep)
             AND NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.program_hash = s.program_hash AND e.eval_key = @key)
           GROUP BY s.program_hash ORDER BY sid`,
        )
        .all({ key, arm: nn(options.arm), rep: nn(options.repeatIndex) }) as { hash: string; code: string; iteration_id: number; sid: number }[]
    ).map((r) => ({ hash: r.hash, code: r.code, iterationId: r.iteration_id, sampleId: r.sid }));
    const awaitingFullDev = (
      this.db
        .prepare(
          `SELECT e.program_hash AS hash, e.dev_subset FROM evaluations e
           WHERE e.eval_key = @key AND e.verdict = 'ok' AND e.dev_subset IS NOT NULL AND e.dev_strict IS NULL
             AND EXISTS (SELECT 1 FROM samples s JOIN iterations i ON i.id = s.iteration_id WHERE s.program_hash = e.program_hash
                         AND (@arm IS NULL OR i.arm = @arm) AND (@rep IS NULL OR i.repeat_index = @rep))
           ORDER BY e.dev_subset DESC, e.program_hash`,
        )
        .all({ key, arm: nn(options.arm), rep: nn(options.repeatIndex) }) as { hash: string; dev_subset: number }[]
    ).map((r) => ({ hash: r.hash, devSubset: r.dev_subset }));
    const top = this.leaderboard(options.topK ?? 15, { evalKey: key, arm: options.arm, repeatIndex: options.repeatIndex });
    const awaitingTest = top.filter((r) => r.devStrict !== null && r.testStrict === null).map((r) => ({ hash: r.hash, devStrict: r.devStrict! }));
    const selTop = options.selectTopK === undefined ? [] : this.leaderboard(options.selectTopK, { evalKey: key, arm: options.arm, repeatIndex: options.repeatIndex });
    const awaitingSelect = selTop.filter((r) => r.devStrict !== null && r.selectStrict === null).map((r) => ({ hash: r.hash, devStrict: r.devStrict! }));
    return { openIterations, unevaluated, awaitingFullDev, awaitingTest, awaitingSelect };
  }

  // ------------------------------------------------------------ preference pairs

  /** Stores a prompt text and returns its hash. */
  addPrompt(text: string): string {
    const h = sha256(text);
    this.db.prepare('INSERT OR IGNORE INTO prompts (prompt_hash, text) VALUES (?, ?)').run(h, text);
    return h;
  }

  prompt(hash: string): string | undefined {
    return (this.db.prepare('SELECT text FROM prompts WHERE prompt_hash = ?').get(hash) as { text: string } | undefined)?.text;
  }

  /** Stores the preference pairs of an iteration (one transaction; duplicates are ignored). Returns the number inserted. */
  addPairs(iterationId: number, prompt: string, pairs: PairInput[]): number {
    return this.transaction(() => {
      if (!this.iterationById(iterationId)) throw new Error(`store: no iteration with id ${iterationId}`);
      const ph = this.addPrompt(prompt);
      const ins = this.db.prepare(
        `INSERT OR IGNORE INTO pairs (iteration_id, prompt_hash, chosen_hash, rejected_hash, chosen_score, rejected_score, source)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      );
      let n = 0;
      for (const p of pairs) {
        for (const h of [p.chosenHash, p.rejectedHash]) if (!this.programByHash(h)) throw new Error(`store: pair program ${h} is not in the database`);
        if (p.chosenHash === p.rejectedHash) throw new Error(`store: pair has the same program ${p.chosenHash} as chosen and rejected`);
        checkScore('chosenScore', p.chosenScore);
        checkScore('rejectedScore', p.rejectedScore);
        n += ins.run(iterationId, ph, p.chosenHash, p.rejectedHash, p.chosenScore, p.rejectedScore, p.source ?? 'current').changes;
      }
      return n;
    });
  }

  pairs(iterationId: number): PairRecord[] {
    const rows = this.db.prepare('SELECT * FROM pairs WHERE iteration_id = ? ORDER BY id').all(iterationId) as {
      id: number; iteration_id: number; prompt_hash: string; chosen_hash: string; rejected_hash: string; chosen_score: number; rejected_score: number; source: 'current' | 'carried';
    }[];
    return rows.map((r) => ({
      id: r.id, iterationId: r.iteration_id, promptHash: r.prompt_hash, chosenHash: r.chosen_hash, rejectedHash: r.rejected_hash,
      chosenScore: r.chosen_score, rejectedScore: r.rejected_score, source: r.source,
    }));
  }

  /**
   * Exports an iteration's pairs as TRL preference JSONL: one object per line with `prompt`, `chosen`,
   * `rejected` (the completions: program code, optionally wrapped by `completion`) and bookkeeping
   * fields (`chosen_hash`, `rejected_hash`, `chosen_score`, `rejected_score`, `iteration`, `arm`,
   * `source`). Written atomically. Returns the number of lines.
   */
  exportPairsJsonl(iterationId: number, outPath: string, options: { completion?: (code: string) => string } = {}): number {
    const it = this.iterationById(iterationId);
    if (!it) throw new Error(`store: no iteration with id ${iterationId}`);
    const wrap = options.completion ?? ((c: string) => c);
    const lines = this.pairs(iterationId).map((p) =>
      JSON.stringify({
        prompt: this.prompt(p.promptHash),
        chosen: wrap(this.programByHash(p.chosenHash)!.code),
        rejected: wrap(this.programByHash(p.rejectedHash)!.code),
        chosen_hash: p.chosenHash, rejected_hash: p.rejectedHash, chosen_score: p.chosenScore, rejected_score: p.rejectedScore,
        iteration: it.t, arm: it.arm, repeat_index: it.repeatIndex, source: p.source,
      }),
    );
    writeFileAtomic(outPath, lines.length ? lines.join('\n') + '\n' : '');
    return lines.length;
  }

  /** Writes a program's code to a file (atomically), optionally behind a comment header with its scores. */
  exportProgram(hash: string, outPath: string, options: { header?: boolean; evalKey?: string } = {}): void {
    const p = this.programByHash(hash);
    if (!p) throw new Error(`store: program ${hash} is not in the database`);
    let text = p.code.endsWith('\n') ? p.code : p.code + '\n';
    if (options.header) {
      const e = this.evaluationFor(hash, options.evalKey);
      const fmt = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(4));
      const head = [
        `// selfdev program ${hash}`,
        p.firstSample ? `// first sampled: iteration ${p.firstSample.t}, arm ${p.firstSample.arm}, origin ${p.firstSample.origin}` : '// never sampled',
        `// verdict ${e?.verdict ?? 'not evaluated'}; dev strict ${fmt(e?.devStrict)}, dev flex ${fmt(e?.devFlex)}; select strict ${fmt(e?.selectStrict)}; test strict ${fmt(e?.testStrict)}, test flex ${fmt(e?.testFlex)}`,
      ];
      text = head.join('\n') + '\n' + text;
    }
    writeFileAtomic(outPath, text);
  }

  // ------------------------------------------------------------ DPO log

  addDpoSteps(iterationId: number, steps: DpoStepInput[]): void {
    this.transaction(() => {
      if (!this.iterationById(iterationId)) throw new Error(`store: no iteration with id ${iterationId}`);
      const ins = this.db.prepare(
        `INSERT OR REPLACE INTO dpo_steps (iteration_id, step, loss, rewards_chosen, rewards_rejected, margin, accuracy, logps_chosen, logps_rejected, lr)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const s of steps) {
        if (!Number.isInteger(s.step) || s.step < 0) throw new Error(`store: DPO step must be a non-negative integer, got ${s.step}`);
        checkScore(`dpo step ${s.step} loss`, s.loss);
        ins.run(iterationId, s.step, s.loss, nn(s.rewardsChosen), nn(s.rewardsRejected), nn(s.margin), nn(s.accuracy), nn(s.logpsChosen), nn(s.logpsRejected), nn(s.lr));
      }
    });
  }

  dpoSteps(iterationId?: number): DpoStepRecord[] {
    const rows = this.db
      .prepare('SELECT * FROM dpo_steps WHERE (@id IS NULL OR iteration_id = @id) ORDER BY iteration_id, step')
      .all({ id: nn(iterationId) }) as {
      iteration_id: number; step: number; loss: number; rewards_chosen: number | null; rewards_rejected: number | null; margin: number | null;
      accuracy: number | null; logps_chosen: number | null; logps_rejected: number | null; lr: number | null;
    }[];
    return rows.map((r) => ({
      iterationId: r.iteration_id, step: r.step, loss: r.loss, rewardsChosen: r.rewards_chosen, rewardsRejected: r.rewards_rejected,
      margin: r.margin, accuracy: r.accuracy, logpsChosen: r.logps_chosen, logpsRejected: r.logps_rejected, lr: r.lr,
    }));
  }

  // ------------------------------------------------------------ baselines, transfer, repeats

  /** Inserts or replaces a baseline result (key: name, expert set, repeat, params). */
  addBaseline(b: BaselineInput): BaselineRecord {
    for (const f of ['devStrict', 'devFlex', 'testStrict', 'testFlex'] as const) checkScore(`baseline ${b.name} ${f}`, b[f]);
    const params = canonicalJson(b.params ?? {});
    const exp = b.expertSet ?? 'in-domain';
    const rep = b.repeatIndex ?? 0;
    this.db
      .prepare(
        `INSERT INTO baselines (name, method, params_json, expert_set, repeat_index, selected, dev_strict, dev_flex, test_strict, test_flex)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name, expert_set, repeat_index, params_json) DO UPDATE SET method = excluded.method, selected = excluded.selected,
           dev_strict = excluded.dev_strict, dev_flex = excluded.dev_flex, test_strict = excluded.test_strict, test_flex = excluded.test_flex`,
      )
      .run(b.name, b.method, params, exp, rep, b.selected ? 1 : 0, nn(b.devStrict), nn(b.devFlex), nn(b.testStrict), nn(b.testFlex));
    return this.baselines().find((x) => x.name === b.name && x.expertSet === exp && x.repeatIndex === rep && canonicalJson(x.params) === params)!;
  }

  baselines(filter: { expertSet?: ExpertSet; selectedOnly?: boolean } = {}): BaselineRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM baselines WHERE (@exp IS NULL OR expert_set = @exp) AND (@sel = 0 OR selected = 1)
         ORDER BY expert_set, name, repeat_index, id`,
      )
      .all({ exp: nn(filter.expertSet), sel: filter.selectedOnly ? 1 : 0 }) as {
      id: number; name: string; method: string; params_json: string; expert_set: ExpertSet; repeat_index: number; selected: number;
      dev_strict: number | null; dev_flex: number | null; test_strict: number | null; test_flex: number | null;
    }[];
    return rows.map((r) => ({
      id: r.id, name: r.name, method: r.method, params: JSON.parse(r.params_json), expertSet: r.expert_set, repeatIndex: r.repeat_index,
      selected: r.selected === 1, devStrict: r.dev_strict, devFlex: r.dev_flex, testStrict: r.test_strict, testFlex: r.test_flex,
    }));
  }

  addTransfer(t: TransferInput): TransferRecord {
    if (!this.programByHash(t.hash)) throw new Error(`store: transfer program ${t.hash} is not in the database`);
    for (const f of ['devStrict', 'devFlex', 'testStrict', 'testFlex'] as const) checkScore(`transfer ${f}`, t[f]);
    this.db
      .prepare(
        `INSERT INTO transfer (program_hash, source_rank, expert_set, repeat_index, dev_strict, dev_flex, test_strict, test_flex)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (program_hash, expert_set, repeat_index) DO UPDATE SET source_rank = excluded.source_rank,
           dev_strict = excluded.dev_strict, dev_flex = excluded.dev_flex, test_strict = excluded.test_strict, test_flex = excluded.test_flex`,
      )
      .run(t.hash, t.sourceRank, t.expertSet, t.repeatIndex ?? 0, nn(t.devStrict), nn(t.devFlex), nn(t.testStrict), nn(t.testFlex));
    return this.transfers().find((x) => x.hash === t.hash && x.expertSet === t.expertSet && x.repeatIndex === (t.repeatIndex ?? 0))!;
  }

  transfers(): TransferRecord[] {
    const rows = this.db.prepare('SELECT * FROM transfer ORDER BY expert_set, repeat_index, source_rank, id').all() as {
      id: number; program_hash: string; source_rank: number; expert_set: string; repeat_index: number;
      dev_strict: number | null; dev_flex: number | null; test_strict: number | null; test_flex: number | null;
    }[];
    return rows.map((r) => ({
      id: r.id, hash: r.program_hash, sourceRank: r.source_rank, expertSet: r.expert_set, repeatIndex: r.repeat_index,
      devStrict: r.dev_strict, devFlex: r.dev_flex, testStrict: r.test_strict, testFlex: r.test_flex,
    }));
  }

  /** Records (or replaces) the final result of one repeat of one arm. */
  recordRepeat(r: RepeatInput): void {
    if (!Number.isInteger(r.repeatIndex) || r.repeatIndex < 0) throw new Error(`store: repeat index must be a non-negative integer, got ${r.repeatIndex}`);
    if (!Number.isInteger(r.seed)) throw new Error(`store: repeat seed must be an integer, got ${r.seed}`);
    if (r.bestHash && !this.programByHash(r.bestHash)) throw new Error(`store: repeat best program ${r.bestHash} is not in the database`);
    for (const f of ['bestDevStrict', 'testStrict', 'testFlex'] as const) checkScore(`repeat ${f}`, r[f]);
    this.db
      .prepare(
        `INSERT OR REPLACE INTO repeats (arm, repeat_index, seed, best_program_hash, best_dev_strict, test_strict, test_flex)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(r.arm, r.repeatIndex, r.seed, nn(r.bestHash), nn(r.bestDevStrict), nn(r.testStrict), nn(r.testFlex));
  }

  repeats(arm?: string): RepeatRecord[] {
    const rows = this.db
      .prepare("SELECT * FROM repeats WHERE (@arm IS NULL OR arm = @arm) ORDER BY arm <> 'dpo', arm, repeat_index")
      .all({ arm: nn(arm) }) as {
      arm: string; repeat_index: number; seed: number; best_program_hash: string | null; best_dev_strict: number | null; test_strict: number | null; test_flex: number | null;
    }[];
    return rows.map((r) => ({
      arm: r.arm, repeatIndex: r.repeat_index, seed: r.seed, bestHash: r.best_program_hash, bestDevStrict: r.best_dev_strict,
      testStrict: r.test_strict, testFlex: r.test_flex,
    }));
  }

  /** Count of rows per table (for diagnostics and tests). */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of ['runs', 'eval_configs', 'prompts', 'iterations', 'programs', 'samples', 'evaluations', 'pairs', 'dpo_steps', 'baselines', 'transfer', 'repeats']) {
      out[t] = (this.db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n;
    }
    return out;
  }
}
