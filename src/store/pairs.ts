// Preference pairs with their prompts, their TRL JSONL export, and the DPO training log (tables
// prompts, pairs, dpo_steps).
import { EvaluationTables } from './evaluations.ts';
import { checkScore, nn, sha256, writeFileAtomic } from './util.ts';

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

export class PairTables extends EvaluationTables {
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
   * `source`). `format` reshapes the three (e.g. into TRL's conversational format, loop/pairs-format.ts). Written atomically. Returns the number of lines.
   */
  exportPairsJsonl(iterationId: number, outPath: string, options: { completion?: (code: string) => string; format?: (row: { prompt: string; chosen: string; rejected: string }) => { prompt: unknown; chosen: unknown; rejected: unknown } } = {}): number {
    const it = this.iterationById(iterationId);
    if (!it) throw new Error(`store: no iteration with id ${iterationId}`);
    const wrap = options.completion ?? ((c: string) => c);
    const format = options.format ?? ((r) => r);
    const lines = this.pairs(iterationId).map((p) =>
      JSON.stringify({
        ...format({ prompt: this.prompt(p.promptHash) ?? '', chosen: wrap(this.programByHash(p.chosenHash)!.code), rejected: wrap(this.programByHash(p.rejectedHash)!.code) }),
        chosen_hash: p.chosenHash, rejected_hash: p.rejectedHash, chosen_score: p.chosenScore, rejected_score: p.rejectedScore,
        iteration: it.t, arm: it.arm, repeat_index: it.repeatIndex, source: p.source,
      }),
    );
    writeFileAtomic(outPath, lines.length ? lines.join('\n') + '\n' : '');
    return lines.length;
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
}
