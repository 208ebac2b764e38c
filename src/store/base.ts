// The run database's base: the SQLite handle, schema migrations and transactions, the run row and
// the evaluation configurations (tables runs, eval_configs). The tables of a run are added layer by
// layer (iterations.ts → evaluations.ts → pairs.ts → results.ts); RunStore (store.ts) opens it.
import type { RankMetric } from '../eval/protocol.ts';
import type { Database } from './sqlite.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';
import { canonicalJson, evalKeyOf, now, readSelfdevVersion } from './util.ts';

export type RunStatus = 'running' | 'done' | 'failed' | 'interrupted';

export interface RunInfo {
  name: string;
  config: unknown;
  seed: number;
  /** The evaluation configuration; its hash becomes the run's default eval key. */
  evalConfig: unknown;
  /** How scores are produced (src/eval/protocol.ts), recorded for the report. */
  evalProtocol?: unknown;
  selfdevVersion?: string;
}

export interface RunRecord {
  name: string;
  config: unknown;
  seed: number;
  evalKey: string;
  /** The scoring protocol; null for runs recorded before it was stored. */
  evalProtocol: unknown;
  status: RunStatus;
  selfdevVersion: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export class StoreBase {
  readonly path: string;
  protected readonly db: Database;

  protected constructor(path: string, db: Database) {
    this.path = path;
    this.db = db;
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

  protected checkVersion(): number {
    const v = this.schemaVersion();
    if (v > SCHEMA_VERSION) {
      throw new Error(`store: ${this.path} has schema version ${v}, newer than this selfdev understands (${SCHEMA_VERSION}); upgrade selfdev`);
    }
    return v;
  }

  protected migrate(): void {
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
        .prepare('INSERT INTO runs (id, name, config_json, seed, eval_key, eval_protocol_json, status, selfdev_version, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(info.name, JSON.stringify(info.config ?? null), info.seed, evalKey, info.evalProtocol === undefined ? null : JSON.stringify(info.evalProtocol), 'running', info.selfdevVersion ?? readSelfdevVersion(), ts, ts);
    });
    return this.run();
  }

  getRun(): RunRecord | undefined {
    const r = this.db.prepare('SELECT * FROM runs WHERE id = 1').get() as
      | { name: string; config_json: string; seed: number; eval_key: string; eval_protocol_json?: string | null; status: RunStatus; selfdev_version: string; created_at: string; updated_at: string; finished_at: string | null }
      | undefined;
    if (!r) return undefined;
    return {
      name: r.name, config: JSON.parse(r.config_json), seed: r.seed, evalKey: r.eval_key, evalProtocol: r.eval_protocol_json == null ? null : JSON.parse(r.eval_protocol_json) /* absent in a store older than schema 5 opened read-only */, status: r.status,
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

  /**
   * The metric the run ranks programs by (its recorded protocol's rankBy: lm-eval's gsm8k
   * 'strict' = strict-match or 'flexible' = flexible-extract); 'strict' for a run recorded without one.
   */
  rankMetric(): RankMetric {
    const p = this.getRun()?.evalProtocol as { rankBy?: unknown } | null | undefined;
    return p?.rankBy === 'flexible' ? 'flexible' : 'strict';
  }

  protected defaultEvalKey(evalKey?: string): string {
    return evalKey ?? this.run().evalKey;
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
