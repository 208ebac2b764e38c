// Iterations, sampled programs and sampling events (tables iterations, programs, samples).
import { StoreBase } from './base.ts';
import { checkScore, nn, now, programHash } from './util.ts';

export type IterationStatus = 'sampling' | 'evaluating' | 'training' | 'done' | 'failed';

export type Origin = 'factory' | 'seed' | 'mutation' | 'carry';

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

// Row shape as returned by SQLite.
export interface IterationRow {
  id: number; arm: string; repeat_index: number; t: number; temperature: number | null; status: IterationStatus;
  n_target: number | null; factory_checkpoint: string | null; timings_json: string; started_at: string; finished_at: string | null;
  sampled_from: string | null; merged_checkpoint: string | null; merged_program: string | null;
}

export function toIteration(r: IterationRow): IterationRecord {
  return {
    id: r.id, arm: r.arm, repeatIndex: r.repeat_index, t: r.t, temperature: r.temperature, status: r.status,
    nTarget: r.n_target, factoryCheckpoint: r.factory_checkpoint, timings: JSON.parse(r.timings_json) as Record<string, number>,
    startedAt: r.started_at, finishedAt: r.finished_at,
    sampledFrom: r.sampled_from, mergedCheckpoint: r.merged_checkpoint, mergedProgram: r.merged_program,
  };
}

export class IterationTables extends StoreBase {
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
}
