/**
 * The tiny world's GSM8k-format benchmark (dev, test, select) and its training streams, built from
 * the problem families of problems.ts.
 *
 * Disjointness: a problem's key is its family, its template (the question with names, pronouns,
 * objects, containers, places masked) and its numbers. The benchmark is deduplicated by key across
 * dev, test and select, and training streams skip every benchmark key — so a training problem is
 * never a benchmark problem with other names or objects; it always differs in template or numbers.
 */
import { BENCH_FAMILIES, BenchRng, isFamily, makeProblem, problemKey, seedFrom, withHint, type Family, type MakeOptions, type Problem } from './problems.ts';

// ------------------------------------------------------------------------------------- splits

export const DEFAULT_BENCH_SEED = 1234;
/**
 * dev: screening (every candidate); select: re-scoring the screened top-k to choose the best
 * program (1,000 problems: a 25 % score has a standard error of 1.4 points); test: reporting only.
 */
export const DEFAULT_SPLIT_SIZES = { dev: 200, test: 1000, select: 1000 } as const;
export const SPLITS = ['dev', 'test', 'select'] as const;
export type SplitName = (typeof SPLITS)[number];

export interface Benchmark {
  dev: Problem[];
  test: Problem[];
  select: Problem[];
}

/**
 * The benchmark: dev, test, then select, each with an equal share of every BENCH_FAMILIES member,
 * one PRNG stream per (seed, split, family), deduplicated by `problemKey` across all splits, each
 * split shuffled by its own stream. Splits are generated in that order, so adding `select` left dev
 * and test byte-identical. A missing `select` size means 0.
 */
export function makeBenchmark(seed: number = DEFAULT_BENCH_SEED, sizes: { dev: number; test: number; select?: number } = DEFAULT_SPLIT_SIZES): Benchmark {
  const F = BENCH_FAMILIES.length;
  for (const [name, n] of Object.entries(sizes)) {
    if (!Number.isInteger(n) || n < 0 || n % F !== 0) throw new Error(`makeBenchmark: ${name} size ${n} is not a multiple of the ${F} families`);
  }
  const seen = new Set<string>();
  const out: Benchmark = { dev: [], test: [], select: [] };
  for (const split of SPLITS) {
    const per = (sizes[split] ?? 0) / F;
    const items: Problem[] = [];
    for (const fam of BENCH_FAMILIES) {
      const r = new BenchRng(seedFrom(seed, 'bench', split, fam));
      let got = 0;
      let tries = 0;
      while (got < per) {
        if (++tries > per * 200) throw new Error(`makeBenchmark: cannot find ${per} distinct '${fam}' problems`);
        const p = makeProblem(fam, r);
        const key = problemKey(p);
        if (seen.has(key)) continue;
        seen.add(key);
        items.push(p);
        got++;
      }
    }
    out[split] = new BenchRng(seedFrom(seed, 'shuffle', split)).shuffle(items);
  }
  return out;
}

/** JSONL text of a split: one `{"question","answer","family"}` object per line, final newline. */
export function toJsonl(problems: readonly Problem[]): string {
  return problems.map((p) => JSON.stringify({ question: p.question, answer: p.answer, family: p.family })).join('\n') + '\n';
}

/** Every `problemKey` of a benchmark (dev + test + select): pass as `exclude` to the training generators. */
export function benchmarkKeys(b: Benchmark): Set<string> {
  return new Set([...b.dev, ...b.test, ...b.select].map(problemKey));
}

let defaultKeys: Set<string> | null = null;
/** The keys of the default benchmark (dev + test + select), computed once. */
export function defaultBenchmarkKeys(): Set<string> {
  if (defaultKeys === null) defaultKeys = benchmarkKeys(makeBenchmark());
  return defaultKeys;
}

export interface TrainingOptions extends MakeOptions {
  seed: number;
  /** Keys to skip; default: every key of the default benchmark (dev + test + select). */
  exclude?: ReadonlySet<string>;
}

/**
 * An endless stream of training problems of one family, disjoint from the benchmark: it draws from
 * its own seed stream (label 'train') and skips every problem whose `problemKey` is excluded.
 */
export function* trainingStream(family: Family, opts: TrainingOptions): Generator<Problem> {
  const exclude = opts.exclude ?? defaultBenchmarkKeys();
  const r = new BenchRng(seedFrom(opts.seed, 'train', family));
  for (;;) {
    const p = makeProblem(family, r);
    if (exclude.has(problemKey(p))) continue;
    yield opts.hint === true ? withHint(p) : p;
  }
}

/**
 * `n` training problems drawn from a family mix (weights need not sum to 1), deterministic in
 * `opts.seed`; each family has its own stream, the family sequence its own.
 */
export function makeTrainingSet(mix: Partial<Record<Family, number>>, n: number, opts: TrainingOptions): Problem[] {
  const fams = (Object.keys(mix) as Family[]).filter((f) => (mix[f] ?? 0) > 0);
  if (fams.length === 0) throw new Error('makeTrainingSet: the mix has no family with a positive weight');
  for (const f of fams) if (!isFamily(f)) throw new Error(`makeTrainingSet: unknown family '${f}'`);
  const total = fams.reduce((s, f) => s + (mix[f] ?? 0), 0);
  const streams = new Map(fams.map((f) => [f, trainingStream(f, opts)]));
  const pickR = new BenchRng(seedFrom(opts.seed, 'train-mix', fams.join(',')));
  const out: Problem[] = [];
  for (let i = 0; i < n; i++) {
    let u = pickR.next() * total;
    let f = fams[fams.length - 1];
    for (const g of fams) {
      u -= mix[g] ?? 0;
      if (u < 0) {
        f = g;
        break;
      }
    }
    out.push(streams.get(f)!.next().value as Problem);
  }
  return out;
}
