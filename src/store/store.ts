// The run database: everything a Self-Developing run produces, in `runDir/run.sqlite`.
//
// Durability: WAL journal + synchronous=FULL. Every write method is one transaction; once it returns,
// its rows survive kill -9 of this process (and power loss, thanks to FULL). The schema and its
// identity rules are documented in schema.ts.
//
// RunStore is composed by table, one layer per module: base.ts (database, migrations, runs,
// eval configs) → iterations.ts (iterations, programs, samples) → evaluations.ts (evaluations and
// the queries over them) → pairs.ts (prompts, pairs, DPO steps) → results.ts (baselines, transfer,
// repeats). This module opens it and is the public surface.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase } from './sqlite.ts';
import type { Database } from './sqlite.ts';
import { ResultTables } from './results.ts';

export type { RunStatus, RunInfo, RunRecord } from './base.ts';
export type { IterationStatus, Origin, IterationStart, IterationRecord, SampleInput, SampleResult, ProgramRecord } from './iterations.ts';
export type { Verdict, ProgramScores, EvaluationInput, EvaluationRecord, LeaderboardOptions, LeaderboardRow, IterationSummary, PendingProgram, PendingWork, FailureRecord } from './evaluations.ts';
export type { PairInput, PairRecord, DpoStepInput, DpoStepRecord } from './pairs.ts';
export type { ExpertSet, BaselineInput, BaselineRecord, TransferInput, TransferRecord, RepeatInput, RepeatRecord } from './results.ts';
export { normalizeCode, sha256, programHash, canonicalJson, evalKeyOf, writeFileAtomic } from './util.ts';

export const DB_FILE = 'run.sqlite';

export class RunStore extends ResultTables {
  private constructor(path: string, db: Database) {
    super(path, db);
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
}
