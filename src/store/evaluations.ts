// Evaluations of programs and the queries over them: leaderboard, per-iteration summary, pending
// work of a resumed loop, failures, program export (table evaluations).
import { IterationTables, type IterationRecord, type Origin } from './iterations.ts';
import { checkScore, median, nn, now, writeFileAtomic } from './util.ts';

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
  /** The queue worker (HOST:PID) that scored it; once set, later writes keep it (schema migration 4). */
  scoredBy?: string | null;
}

/** A program's scores under one eval key (null: not measured). */
export interface ProgramScores {
  /** Screening score on the dev subset, in the run's ranking metric (eval.rankBy; strict by default). */
  devSubset: number | null;
  devStrict: number | null;
  devFlex: number | null;
  testStrict: number | null;
  testFlex: number | null;
  /** Score on the selection split (only the top selectTopK by dev are scored there). */
  selectStrict: number | null;
  selectFlex: number | null;
  families: Record<string, number> | null;
}

export interface EvaluationRecord extends ProgramScores {
  hash: string;
  evalKey: string;
  verdict: Verdict;
  message: string | null;
  sandboxMs: number | null;
  mergeMs: number | null;
  evalMs: number | null;
  /** The queue worker (HOST:PID) that scored it first; null for local evaluation. */
  scoredBy: string | null;
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

export interface LeaderboardRow extends ProgramScores {
  rank: number;
  hash: string;
  code: string;
  /** Iteration, arm and origin of the program's first sample (within the filter). */
  t: number;
  arm: string;
  repeatIndex: number;
  origin: Origin;
  parentHash: string | null;
}

export interface IterationSummary extends Pick<IterationRecord, 'arm' | 'repeatIndex' | 't' | 'temperature' | 'status' | 'nTarget' | 'timings' | 'startedAt' | 'finishedAt' | 'factoryCheckpoint'> {
  iterationId: number;
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

export interface FailureRecord {
  hash: string;
  verdict: string;
  message: string | null;
  code: string;
  t: number;
  arm: string;
}

// Row shape as returned by SQLite.
interface EvaluationRow {
  program_hash: string; eval_key: string; verdict: string; message: string | null; dev_subset: number | null;
  dev_strict: number | null; dev_flex: number | null; test_strict: number | null; test_flex: number | null;
  select_strict: number | null; select_flex: number | null;
  family_json: string | null; sandbox_ms: number | null; merge_ms: number | null; eval_ms: number | null;
  scored_by?: string | null; created_at: string; updated_at: string;
}

function toEvaluation(r: EvaluationRow): EvaluationRecord {
  return {
    hash: r.program_hash, evalKey: r.eval_key, verdict: r.verdict, message: r.message, devSubset: r.dev_subset,
    devStrict: r.dev_strict, devFlex: r.dev_flex, testStrict: r.test_strict, testFlex: r.test_flex,
    selectStrict: r.select_strict ?? null, selectFlex: r.select_flex ?? null,
    families: r.family_json === null ? null : (JSON.parse(r.family_json) as Record<string, number>),
    sandboxMs: r.sandbox_ms, mergeMs: r.merge_ms, evalMs: r.eval_ms, scoredBy: r.scored_by ?? null, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

export class EvaluationTables extends IterationTables {
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
               select_strict, select_flex, family_json, sandbox_ms, merge_ms, eval_ms, scored_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(e.hash, evalKey, e.verdict, nn(e.message), nn(e.devSubset), nn(e.devStrict), nn(e.devFlex), nn(e.testStrict), nn(e.testFlex),
            nn(e.selectStrict), nn(e.selectFlex), e.families ? JSON.stringify(e.families) : null, nn(e.sandboxMs), nn(e.mergeMs), nn(e.evalMs), nn(e.scoredBy), ts, ts);
      } else {
        const pick = <T>(v: T | undefined, old: T): T => (v === undefined ? old : v);
        this.db
          .prepare(
            `UPDATE evaluations SET verdict = ?, message = ?, dev_subset = ?, dev_strict = ?, dev_flex = ?, test_strict = ?, test_flex = ?,
               select_strict = ?, select_flex = ?, family_json = ?, sandbox_ms = ?, merge_ms = ?, eval_ms = ?, scored_by = ?, updated_at = ? WHERE program_hash = ? AND eval_key = ?`,
          )
          .run(pick(e.verdict, prev.verdict), pick(e.message, prev.message), pick(e.devSubset, prev.devSubset), pick(e.devStrict, prev.devStrict),
            pick(e.devFlex, prev.devFlex), pick(e.testStrict, prev.testStrict), pick(e.testFlex, prev.testFlex),
            pick(e.selectStrict, prev.selectStrict), pick(e.selectFlex, prev.selectFlex), e.families === undefined ? (prev.families ? JSON.stringify(prev.families) : null) : e.families ? JSON.stringify(e.families) : null,
            pick(e.sandboxMs, prev.sandboxMs), pick(e.mergeMs, prev.mergeMs), pick(e.evalMs, prev.evalMs), prev.scoredBy ?? nn(e.scoredBy), ts, e.hash, evalKey);
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
   * Best k distinct valid programs: by full dev in the run's ranking metric (rankMetric(): strict, then
   * flex; or flex, then strict), then the dev subset score; programs without a full-dev score come
   * after those with one; ties by first sampling order.
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
         ORDER BY ${this.rankMetric() === 'flexible' ? 'e.dev_flex IS NULL, e.dev_flex DESC, e.dev_strict DESC' : 'e.dev_strict IS NULL, e.dev_strict DESC, e.dev_flex DESC'}, e.dev_subset DESC, first.sid
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
}
