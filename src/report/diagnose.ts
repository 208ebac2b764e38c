/**
 * Why one arm finds better programs than another: per arm and iteration, over every repeat of an
 * experiment folder (DIR/<arm>/r<k>/run.sqlite), what the arm spent its budget on and what its
 * preference pairs taught.
 *
 * - exploration: samples, distinct programs, programs new to the run (not drawn in an earlier
 *   iteration), valid programs, the corpus families of the valid ones (each program is given the
 *   family of its nearest corpus program) and their entropy;
 * - distance from the factory's corpus: token-set Jaccard similarity of each valid program to its
 *   nearest neighbour among `corpusSize` programs of the seed corpus generator (1 = a corpus program
 *   up to constants and layout), and the share below 0.8 ("off-corpus");
 * - exploitation: median and best screening score of the valid programs;
 * - pairs: how many, the share whose rejected side is a failed program (the pair then teaches
 *   validity, not merge quality), carried chosen programs, distinct chosen programs, mean score gap.
 * Read-only; deterministic (the corpus sample is seeded).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FAMILIES, generateProgram, type Family } from '../factory/corpus.ts';
import { RunStore } from '../store/store.ts';
import { median } from './stats.ts';

/** Identifier, keyword and operator tokens of a program; numbers become '#', comments are dropped. */
export function tokenSet(code: string): Set<string> {
  const body = code.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
  const toks = body.match(/[A-Za-z_$][\w$]*|\d+(?:\.\d+)?(?:e-?\d+)?|[^\s\w]/g) ?? [];
  return new Set(toks.map((t) => (/^\d/.test(t) ? '#' : t)));
}

export function jaccard(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  let inter = 0;
  for (const x of a) if (b.has(x)) inter++;
  const union = a.size + b.size - inter;
  return union === 0 ? 1 : inter / union;
}

export interface CorpusIndex {
  items: { family: Family; tokens: Set<string> }[];
}

/** `n` programs of the seed corpus generator (seeds 0..n−1, families in turn). */
export function corpusIndex(n: number): CorpusIndex {
  return { items: Array.from({ length: n }, (_, i) => { const f = FAMILIES[i % FAMILIES.length]!; return { family: f, tokens: tokenSet(generateProgram(i, f).code) }; }) };
}

/** The nearest corpus program: its family and the similarity. */
export function nearestCorpus(code: string, index: CorpusIndex): { family: Family; similarity: number } {
  const t = tokenSet(code);
  let best = { family: index.items[0]!.family, similarity: -1 };
  for (const it of index.items) {
    const s = jaccard(t, it.tokens);
    if (s > best.similarity) best = { family: it.family, similarity: s };
  }
  return best;
}

/** Shannon entropy in bits of a count table. */
export function entropyBits(counts: Iterable<number>): number {
  const c = [...counts].filter((x) => x > 0);
  const n = c.reduce((s, x) => s + x, 0);
  const h = n === 0 ? 0 : -c.reduce((s, x) => s + (x / n) * Math.log2(x / n), 0);
  return h === 0 ? 0 : h; // never -0
}

export interface IterationDiagnosis {
  arm: string;
  t: number;
  repeats: number;
  /** Sums over repeats. */
  sampled: number;
  distinct: number;
  newToRun: number;
  valid: number;
  /** Samples drawn and dropped as repeats before the iteration's budget was filled (dpo-novel, dpo-mutate). */
  droppedRepeats: number;
  /** Means over repeats. */
  medianScreen: number | null;
  bestScreen: number | null;
  familyEntropy: number | null;
  corpusSimilarity: number | null;
  offCorpusShare: number | null;
  /** Valid programs per corpus family (sums over repeats). */
  families: Partial<Record<Family, number>>;
  pairs: number;
  rejectedFailedShare: number | null;
  carriedShare: number | null;
  distinctChosen: number;
  meanGap: number | null;
}

const avg = (xs: number[]): number | null => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null);

/** The arm folders of an experiment and their finished-or-not repeat run folders (or one run folder with its arms). */
export function experimentRuns(dir: string): { arm: string; runDir: string }[] {
  if (!existsSync(dir)) throw new Error(`${dir}: no such experiment folder`);
  if (existsSync(join(dir, 'run.sqlite'))) {
    // a single run folder: its arms as recorded
    const store = RunStore.open(dir, { readonly: true });
    try {
      return [...new Set(store.iterations().map((it) => it.arm))].map((arm) => ({ arm, runDir: dir }));
    } finally {
      store.close();
    }
  }
  const out: { arm: string; runDir: string }[] = [];
  for (const arm of readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    for (const r of readdirSync(join(dir, arm)).filter((x) => /^r\d+$/.test(x)).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))) {
      if (existsSync(join(dir, arm, r, 'run.sqlite'))) out.push({ arm, runDir: join(dir, arm, r) });
    }
  }
  if (out.length === 0) throw new Error(`${dir}: no run found (expected <arm>/r<k>/run.sqlite)`);
  return out;
}

/** Diagnoses the finished iterations of the given runs (any number of experiment folders may be pooled). */
export function diagnoseRuns(runs: { arm: string; runDir: string }[], corpusSize = 1200): IterationDiagnosis[] {
  const index = corpusIndex(corpusSize);
  const near = new Map<string, { family: Family; similarity: number }>();
  const acc = new Map<string, { arm: string; t: number; per: Omit<IterationDiagnosis, 'arm' | 't' | 'repeats'>[] }>();
  for (const { arm, runDir } of runs) {
    const store = RunStore.open(runDir, { readonly: true });
    try {
      const seenBefore = new Set<string>();
      for (const it of store.iterations({ arm })) {
        if (it.status !== 'done') continue;
        const samples = store.samples(it.id);
        const distinct = [...new Set(samples.map((s) => s.hash))];
        const scored = distinct.flatMap((h) => {
          const e = store.evaluationFor(h);
          return e && e.verdict === 'ok' ? [{ hash: h, score: e.devStrict ?? e.devSubset ?? 0 }] : [];
        });
        const fams: Partial<Record<Family, number>> = {};
        const sims: number[] = [];
        for (const s of scored) {
          let n = near.get(s.hash);
          if (!n) near.set(s.hash, (n = nearestCorpus(store.programByHash(s.hash)!.code, index)));
          fams[n.family] = (fams[n.family] ?? 0) + 1;
          sims.push(n.similarity);
        }
        const pairs = store.pairs(it.id);
        const failed = (h: string) => store.evaluationFor(h)?.verdict !== 'ok';
        const scores = scored.map((s) => s.score);
        const row = {
          sampled: samples.length,
          distinct: distinct.length,
          newToRun: distinct.filter((h) => !seenBefore.has(h)).length,
          valid: scored.length,
          droppedRepeats: it.timings.repeats ?? 0,
          medianScreen: scores.length ? median(scores) : null,
          bestScreen: scores.length ? Math.max(...scores) : null,
          familyEntropy: scored.length ? entropyBits(Object.values(fams)) : null,
          corpusSimilarity: avg(sims),
          offCorpusShare: sims.length ? sims.filter((x) => x < 0.8).length / sims.length : null,
          families: fams,
          pairs: pairs.length,
          rejectedFailedShare: pairs.length ? pairs.filter((p) => failed(p.rejectedHash)).length / pairs.length : null,
          carriedShare: pairs.length ? pairs.filter((p) => p.source === 'carried').length / pairs.length : null,
          distinctChosen: new Set(pairs.map((p) => p.chosenHash)).size,
          meanGap: avg(pairs.map((p) => p.chosenScore - p.rejectedScore)),
        };
        for (const h of distinct) seenBefore.add(h);
        const key = `${arm}\u0000${it.t}`;
        if (!acc.has(key)) acc.set(key, { arm, t: it.t, per: [] });
        acc.get(key)!.per.push(row);
      }
    } finally {
      store.close();
    }
  }
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  const meanOf = (xs: (number | null)[]) => avg(xs.filter((x): x is number => x !== null));
  return [...acc.values()].map(({ arm, t, per }) => {
    const families: Partial<Record<Family, number>> = {};
    for (const p of per) for (const [f, n] of Object.entries(p.families)) families[f as Family] = (families[f as Family] ?? 0) + n;
    return {
      arm, t, repeats: per.length,
      sampled: sum(per.map((p) => p.sampled)), distinct: sum(per.map((p) => p.distinct)), newToRun: sum(per.map((p) => p.newToRun)), valid: sum(per.map((p) => p.valid)),
      droppedRepeats: sum(per.map((p) => p.droppedRepeats)),
      medianScreen: meanOf(per.map((p) => p.medianScreen)), bestScreen: meanOf(per.map((p) => p.bestScreen)),
      familyEntropy: meanOf(per.map((p) => p.familyEntropy)), corpusSimilarity: meanOf(per.map((p) => p.corpusSimilarity)), offCorpusShare: meanOf(per.map((p) => p.offCorpusShare)),
      families,
      pairs: sum(per.map((p) => p.pairs)), rejectedFailedShare: meanOf(per.map((p) => p.rejectedFailedShare)), carriedShare: meanOf(per.map((p) => p.carriedShare)),
      distinctChosen: sum(per.map((p) => p.distinctChosen)), meanGap: meanOf(per.map((p) => p.meanGap)),
    };
  }).sort((a, b) => (a.arm < b.arm ? -1 : a.arm > b.arm ? 1 : a.t - b.t));
}

const f1 = (x: number | null, k = 1) => (x === null ? '–' : (100 * x).toFixed(k));
const f2 = (x: number | null) => (x === null ? '–' : x.toFixed(2));

/** A markdown table of the diagnosis (scores and shares in %). */
export function formatDiagnosis(rows: IterationDiagnosis[]): string {
  const head = '| arm | t | repeats | sampled | distinct | new to run | dropped repeats | valid | median dev | best dev | family entropy (bits) | corpus similarity | off-corpus % | top families | pairs | rejected failed % | carried % | distinct chosen | mean gap |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|';
  const top = (f: Partial<Record<Family, number>>) => Object.entries(f).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 3).map(([k, v]) => `${k} ${v}`).join(', ');
  return [head, ...rows.map((r) => `| ${r.arm} | ${r.t} | ${r.repeats} | ${r.sampled} | ${r.distinct} | ${r.newToRun} | ${r.droppedRepeats} | ${r.valid} | ${f1(r.medianScreen)} | ${f1(r.bestScreen)} | ${f2(r.familyEntropy)} | ${f2(r.corpusSimilarity)} | ${f1(r.offCorpusShare, 0)} | ${top(r.families)} | ${r.pairs} | ${f1(r.rejectedFailedShare, 0)} | ${f1(r.carriedShare, 0)} | ${r.distinctChosen} | ${f1(r.meanGap)} |`)].join('\n');
}
