// End results of a run: baselines, transfer of discovered programs to other experts, and the
// result of each repeat (tables baselines, transfer, repeats).
import { PairTables } from './pairs.ts';
import { canonicalJson, checkScore, nn } from './util.ts';

export type ExpertSet = 'in-domain' | 'ood';

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

export class ResultTables extends PairTables {
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
}
