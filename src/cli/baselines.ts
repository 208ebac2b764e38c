import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, intOption, parseCli, type Command } from './command.ts';
import { ProgressBar } from './progress.ts';

const USAGE = `selfdev baselines [--world DIR] [--split dev,test] [--limit N] [--json] [--out FILE] [options]

Scores the baselines of a tiny world: M0 alone, each expert alone, the oracles, and mergekit methods
merged in memory with the same implementations (and bit-identical results) as \`selfdev merge\`:
task arithmetic (lambda grid), ties, dare_ties, dare_linear, breadcrumbs, della (density x
lambda/weight grids), model_stock, slerp of expert pairs (t grid); the same families (fewer) on the
out-of-domain experts. Every config is scored on dev; per family the best by dev (strict, then
flexible) is scored on test. Prints a table grouped per family ('*' = picked on dev) and the
headroom (best TA - M0, oracle - best TA). Results are cached per config (method, params, model
hashes, settings) in the --out file, so a rerun or an interrupted run recomputes nothing twice
(the key does not cover the generation engine's code: use --no-cache or delete the file after
changing it).

  --world DIR        trained world folder (roles read from <stage>/world.json) [world/models]
  --dev FILE         dev benchmark [DIR/../bench/dev.jsonl]
  --test FILE        test benchmark [DIR/../bench/test.jsonl]
  --split S          dev | dev,test (test needs dev: configs are tuned on dev)   [dev,test]
  --limit N          only the first N questions of each split
  --tensors F        tensors merged: mlp | all | attention,mlp,... | re:REGEX       [mlp]
  --quick            a small grid (a few configs per family)
  --partial          use the stages trained so far (skip missing OOD experts / oracles)
  --seed N           run seed of the random methods (dare_*, della)              [0]
  --max-tokens N     new tokens per question                                      [96]
  --batch N          rows per forward batch                                       [50]
  --jobs N           evaluations at once, in N worker processes (scores do not depend on N) [1]
  --out FILE         cache + last report (JSON)                       [DIR/../baselines.json]
  --no-cache         neither read nor write the --out file
  --json             print the report as one JSON object instead of the table`;

export const command: Command = {
  name: 'baselines',
  summary: 'Score the tiny world\'s baselines (M0, experts, oracles, mergekit methods tuned on dev, reported on test).',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parseCli(() => parseArgs({
      args,
      allowPositionals: true,
      options: {
        world: { type: 'string' }, dev: { type: 'string' }, test: { type: 'string' }, split: { type: 'string' }, limit: { type: 'string' },
        tensors: { type: 'string' }, quick: { type: 'boolean' }, partial: { type: 'boolean' }, seed: { type: 'string' }, 'max-tokens': { type: 'string' }, batch: { type: 'string' }, jobs: { type: 'string' },
        out: { type: 'string' }, 'no-cache': { type: 'boolean' }, json: { type: 'boolean' },
      },
    }));
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'\n\n${USAGE}`);
    const splits = (values.split ?? 'dev,test').split(',').map((s) => s.trim()).filter(Boolean);
    for (const s of splits) if (s !== 'dev' && s !== 'test') throw new UsageError(`--split: unknown split '${s}' (use dev or dev,test)`);
    if (!splits.includes('dev')) throw new UsageError('--split: test needs dev too, configs are tuned on dev (use --split dev,test)');
    if (values['no-cache'] && values.out) throw new UsageError('give --out or --no-cache, not both');
    const limit = intOption(values.limit, 'limit', undefined, 1);
    const seed = intOption(values.seed, 'seed', 0);
    const maxTokens = intOption(values['max-tokens'], 'max-tokens', 96, 1);
    const batchSize = intOption(values.batch, 'batch', 50, 1);
    const jobs = intOption(values.jobs, 'jobs', 1, 1);
    const tensors = values.tensors ?? 'mlp';
    const B = await import('../world/baselines.ts');
    const { tensorSelector } = await import('../merge/tensor-filter.ts');
    try {
      tensorSelector(tensors);
    } catch (e) {
      throw new UsageError(`--tensors: ${(e as Error).message}`);
    }
    const worldDir = resolve(values.world ?? B.defaultWorldDir());
    let world;
    try {
      world = B.discoverWorld(worldDir, { dev: values.dev, test: values.test }, { partial: values.partial === true });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const out = values['no-cache'] ? undefined : resolve(values.out ?? join(dirname(worldDir), 'baselines.json'));
    const grid = B.defaultGrid(world, { quick: values.quick === true });
    const bar = new ProgressBar('baselines');
    const report = await B.runBaselines(world, {
      splits: splits as Array<'dev' | 'test'>, limit, tensors, seed, maxTokens, batchSize, grid, cacheFile: out, jobs,
      onProgress: (e) => bar.update(e.done, e.total, `${e.split} ${e.candidate.set} ${e.candidate.family} ${e.candidate.label}: ${(100 * e.score.strict).toFixed(1)}%${e.score.cached ? ' (cached)' : ` ${e.score.seconds.toFixed(0)}s`}`, true),
    });
    bar.done();
    if (values.json) console.log(JSON.stringify(report));
    else {
      console.log(B.formatBaselines(report));
      if (out) console.log(`results and cache: ${out}`);
    }
    return 0;
  },
};
