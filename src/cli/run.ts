import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { UsageError, parseCli, type Command } from './command.ts';
import { makeRunProgress } from './run-progress.ts';
import { readRegularText } from '../io/files.ts';
import type { Arm } from '../loop/config.ts';

const usage = `selfdev run [CONFIG.yml] --out DIR [--resume] [--queue redis://HOST:PORT/DB]
selfdev run [CONFIG.yml] --out DIR --arms dpo,random,evolution --repeats R

Runs the Self-Developing loop (sample merge programs → sandbox cascade → in-memory merge onto the
seed → dev scoring → preference pairs → DPO on the factory). Then it chooses the best program on a
separate selection split: the top selectTopK programs by dev are re-scored on world.select and the
best there is the run's best program (dev screens, select chooses, test only reports). It scores the
top topKTest by dev, plus that program, on test (every valid program with eval.testAll, to measure
how the splits agree; never used for a choice), compares with the seed and dev-tuned Task
Arithmetic, applies the top-3 by dev to the out-of-domain experts, and writes DIR/report.html,
DIR/best-algorithm.js and DIR/best-merge.yml (the best program). The best test score among the top
topKTest by dev (the paper's protocol, which selects on test) is reported beside it.

Every finished step is stored in DIR/run.sqlite: after an interruption, rerun with --resume (the
stored config is used; the config argument may be omitted).

Experiment (with --arms and/or --repeats): each (arm, repeat) is its own resumable run in
DIR/<arm>/r<k>/ with seed derive(seed, k) — the same per repeat in every arm — with the same budget.
Arms: dpo (the loop), random (the untrained factory every iteration, no DPO), evolution (iteration 1
as random, then mutations/recombinations of the best programs so far by dev, no DPO). Then
DIR/summary.json and DIR/report.html compare the arms: test accuracy of each run's best program
(chosen on the selection split), mean over repeats with a bootstrap 95% interval, and its margin over
dev-tuned Task Arithmetic; the best-by-dev program's test accuracy and the paper's best-by-test among
the top-k (labelled); the dev-vs-test rank correlation per run; median dev per iteration.
Rerunning the same command continues unfinished runs and skips finished ones (no --resume needed;
the stored DIR/experiment.json config is used; a config given again must equal it except for workers
and distributed, which, like --queue, only say how the runs are evaluated). With --queue (or a
distributed block) every run's jobs go through the queue, each run under its own job ids.

Options:
  --out DIR     run folder (required)
  --resume      continue the run in DIR
  --check       only check the config completely (types, ranges, every path and model folder it
                names) and exit; nothing is created (a run also checks all this before it starts)
  --json        print the final result as one JSON object
  --queue URL   evaluate the candidates on \`selfdev worker\` processes through a BullMQ queue on Redis
                (redis://HOST:PORT/DB; sets distributed.url; see docs/distributed.md); also for experiments
  --arms LIST   experiment arms, comma-separated: dpo, random, evolution (default dpo)
  --repeats R   experiment repeats with different seeds (default 1)

Config (YAML; paths relative to the current directory; every key but world.* optional):
  name: my-run
  seed: 0
  arm: dpo                                    # dpo | random | evolution (single run; experiments set it per arm)
  workers: 2                                  # evaluation worker processes (1 = in the loop's own process)
  distributed: { url: redis://127.0.0.1:6379/0, maxInFlight: 16, lockDurationMs: 30000, attempts: 2 }
                                              # optional: evaluate on \`selfdev worker\`s through this queue instead
  recursive: false                            # best merge of each iteration → next factory (builtin factory; seed = its arch + tokenizer)
  iterations: 3
  samplesPerIteration: 100
  temperature: { t1: 1.2, decay: 0.2 }        # T_t = t1 / (1 + decay (t - 1))
  pWin: 0.03                                  # top share of valid programs → chosen
  pLose: 0.1                                  # bottom share → rejected
  carryTopK: 3                                # top-k of each earlier iteration, chosen again
  failedAsRejected: false
  tensorFilter: mlp                           # mlp | attention | all | re:REGEX | comma list of kinds
  eval: { devSubset: 40, promoteTopFraction: 0.25, maxTokens: 96, calculator: true, batchSize: 32, testAll: false }
                                              # testAll: after the choice, score every valid program on test (measurement only)
                                              # + server: { command, model, url?, readyTimeoutSec?, dtype?, concurrency? }:
                                              #   score each merge through an OpenAI-compatible server (env MODEL, PORT)
                                              # task: gsm8k | gsm8k_cot, shots: 0, shotSeed: 1234, train: PATH (shot pool, default
                                              #   train.jsonl beside world.dev): lm-eval's protocol; with server the defaults are
                                              #   lm-eval's (the task's shots, maxTokens 256, calculator false)
  topKTest: 15                                # top programs by dev scored on test (+ the best program if not among them)
  selectTopK: 10                              # top programs by dev re-scored on world.select; the best there is the best program
  dpo: { beta: 0.01, lr: 1.0e-5, epochs: 2, nllAlpha: 0, batchSize: 4, lossType: sigmoid, maxLen: 512, command: "sh train.sh" }
                                              # command: external trainer (openai/llamacpp), env PAIRS, OUT, ITER, PREV;
                                              #   a llamacpp factory loads the next iteration from OUT/model.gguf
  factory: { kind: corpus }                   # or { kind: builtin, dir: DIR, maxTokens, maxPromptTokens }
                                              #    { kind: openai, url: URL, model: NAME }
                                              #    { kind: llamacpp, path: FILE.gguf }
  world:
    seedModel: models/seed
    experts: [models/e1, models/e2, models/e3]
    oodExperts: [models/o1]
    dev: world/bench/dev.jsonl
    test: world/bench/test.jsonl
    select: world/bench/select.jsonl          # selection split: disjoint from dev and test, same benchmark (required
                                              #   when dev/test are not the tiny world's)
    algorithms: algorithms                    # human algorithms (corpus arm)
    example: algorithms/task_arithmetic.js    # the prompt's one-shot example
  baselines: { lambdas: [0.2, 0.4, 0.6, 0.8, 1.0] }
Real LLMs (factory endpoints, eval.server, dpo.command with a TRL recipe): docs/real-llm.md`;

export const command: Command = {
  name: 'run',
  summary: 'Run or resume the Self-Developing loop (factory → sandbox → merge → eval → DPO) and write its report.',
  usage,
  async run(args) {
    const { values, positionals } = parseCli(() =>
      parseArgs({ args, options: { out: { type: 'string' }, resume: { type: 'boolean' }, json: { type: 'boolean' }, arms: { type: 'string' }, repeats: { type: 'string' }, check: { type: 'boolean' }, queue: { type: 'string' } }, allowPositionals: true }),
    );
    if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
    if (values.check) {
      if (!positionals[0]) throw new UsageError('--check needs the CONFIG.yml to check');
      await readConfigFile(positionals[0]);
      process.stdout.write(`${positionals[0]}: config OK\n`);
      return 0;
    }
    if (!values.out) throw new UsageError('--out DIR is required');
    const out = resolve(values.out);
    if (values.queue !== undefined) {
      const { queueUrlProblem } = await import('../loop/config.ts');
      const problem = queueUrlProblem(values.queue);
      if (problem) throw new UsageError(`--queue ${problem}`);
    }
    if (values.arms !== undefined || values.repeats !== undefined) return runExperimentCli(positionals[0], out, values);
    const exists = await holdsRun(out);
    if (exists && !values.resume) throw new UsageError(`${values.out} already holds a run; pass --resume to continue it (or choose another --out)`);
    if (!exists && values.resume && positionals.length === 0) throw new UsageError(`${values.out} holds no run to resume; give a CONFIG.yml to start one`);
    let config: unknown;
    if (positionals[0] && !exists) {
      config = await readConfigFile(positionals[0]);
    } else if (positionals[0]) {
      process.stderr.write(`note: resuming ${values.out} with its stored config (${positionals[0]} is not read)\n`);
    } else if (!exists) {
      throw new UsageError('a CONFIG.yml is required to start a run');
    }

    const { runLoop } = await import('../loop/controller.ts');
    const progress = makeRunProgress();
    const ac = new AbortController();
    const onSig = () => ac.abort();
    process.once('SIGINT', onSig);
    let result;
    try {
      result = await runLoop(config, out, {
        signal: ac.signal,
        onEvent: progress.onEvent,
        queue: values.queue,
      });
    } catch (e) {
      if (ac.signal.aborted) {
        progress.clear();
        process.stderr.write(`interrupted; continue with: selfdev run --out ${values.out} --resume\n`);
        return 130;
      }
      throw e;
    } finally {
      process.removeListener('SIGINT', onSig);
    }
    progress.clear();
    if (values.json) {
      const row = (r: typeof result.best) => r && { hash: r.hash, dev: r.devStrict, select: r.selectStrict, test: r.testStrict };
      process.stdout.write(JSON.stringify({ runDir: result.runDir, best: row(result.best), bestByTestTopK: row(result.bestByTestTopK), baselines: result.baselines, report: result.reportPath }) + '\n');
      return 0;
    }
    const pct = (x: number | null) => (x === null ? '   -' : (100 * x).toFixed(1).padStart(5));
    const lines = ['rank  program       dev   test  select', ...result.leaderboard.map((r) => `${String(r.rank).padStart(4)}  ${r.hash.slice(0, 12)}  ${pct(r.devStrict)}  ${pct(r.testStrict)}   ${pct(r.selectStrict)}`), '', 'baselines                    dev   test', ...result.baselines.map((b) => `${b.name.padEnd(28)} ${pct(b.devStrict)}  ${pct(b.testStrict)}`), ''];
    const scores = (r: NonNullable<typeof result.best>) => `dev ${pct(r.devStrict).trim()}, select ${pct(r.selectStrict).trim()}, test ${pct(r.testStrict).trim()}`;
    if (result.best) lines.push(`best (chosen on the selection split): ${result.best.hash.slice(0, 12)} (${scores(result.best)}) → ${join(out, 'best-algorithm.js')}, ${join(out, 'best-merge.yml')}`);
    if (result.bestByTestTopK) lines.push(`best test among the top ${result.leaderboard.length} by dev (paper protocol; selects on test, optimistic): ${result.bestByTestTopK.hash.slice(0, 12)} (${scores(result.bestByTestTopK)})`);
    lines.push(`report: ${result.reportPath}`);
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};

/**
 * A loop config file: parsed and validated completely — types, ranges and every path it names (model
 * folders through the shared model reader) — before any run folder or store is created; every
 * problem a UsageError naming the file.
 */
async function readConfigFile(file: string): Promise<unknown> {
  if (!existsSync(file)) throw new UsageError(`config file not found: ${file}`);
  let text: string;
  try {
    text = readRegularText(file, 'config file', 16 << 20);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let config: unknown;
  try {
    config = parseYaml(text);
  } catch (e) {
    throw new UsageError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const { resolveConfig } = await import('../loop/config.ts');
  const { checkRunPaths } = await import('../loop/run-paths.ts');
  try {
    await checkRunPaths(resolveConfig(config, file), process.cwd(), file);
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]!);
  }
  return config;
}

/** Whether DIR/run.sqlite holds a run (a store left without one by an interrupted start does not). */
async function holdsRun(out: string): Promise<boolean> {
  if (!existsSync(join(out, 'run.sqlite'))) return false;
  const { RunStore } = await import('../store/store.ts');
  let store;
  try {
    store = RunStore.open(out, { readonly: true });
  } catch {
    return true; // unreadable: let the loop report it
  }
  try {
    return store.getRun() !== undefined;
  } catch {
    return true;
  } finally {
    store.close();
  }
}

/** `selfdev run --arms … --repeats …`: every (arm, repeat) as its own run, then the comparison. */
async function runExperimentCli(configFile: string | undefined, out: string, values: { out?: string; json?: boolean; arms?: string; repeats?: string; queue?: string }): Promise<number> {
  const { parseArms, runExperiment } = await import('../loop/experiment.ts');
  let arms: Arm[];
  try {
    arms = parseArms(values.arms ?? 'dpo');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const repeats = values.repeats === undefined ? 1 : Number(values.repeats);
  if (!/^\d+$/.test(values.repeats ?? '1') || !Number.isInteger(repeats) || repeats < 1) throw new UsageError(`--repeats must be a positive integer, got '${values.repeats}'`);
  const stored = existsSync(join(out, 'experiment.json'));
  if (!stored && existsSync(join(out, 'run.sqlite'))) throw new UsageError(`${values.out} holds a single run, not an experiment; choose another --out`);
  let config: unknown;
  if (configFile) config = await readConfigFile(configFile);
  else if (!stored) throw new UsageError('a CONFIG.yml is required to start an experiment');
  const { experimentConfig } = await import('../loop/experiment.ts');
  try {
    const cfg = experimentConfig(config, out); // checks (or records) the experiment's config before any run starts
    if (cfg.factory.kind === 'corpus' && arms.includes('dpo') && arms.length > 1) process.stderr.write('note: the corpus factory has no trainer, so the dpo arm samples exactly like the random arm\n');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const progress = makeRunProgress();
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  let summary;
  try {
    // the config given now (checked against the stored one above) decides how the runs are evaluated (workers, distributed)
    summary = await runExperiment(config, out, {
      arms,
      repeats,
      queue: values.queue,
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'run') {
          progress.reset();
          progress.prefix = `${e.arm} r${e.repeat}  `;
          progress.clear();
          if (e.state !== 'start') process.stderr.write(`${e.arm} r${e.repeat}: ${e.state === 'skip' ? 'finished earlier, skipped' : 'resuming'}\n`);
        } else progress.onEvent(e.event);
      },
    });
  } catch (e) {
    if (ac.signal.aborted) {
      progress.clear();
      process.stderr.write(`interrupted; continue with the same command (finished runs are skipped)\n`);
      return 130;
    }
    throw e;
  } finally {
    process.removeListener('SIGINT', onSig);
  }
  progress.clear();
  if (values.json) {
    process.stdout.write(JSON.stringify({ summary: join(out, 'summary.json'), report: join(out, 'report.html'), perArm: summary.perArm.map((a) => ({ arm: a.arm, finished: a.finished, testBestBySelect: a.testBestBySelect, marginBySelectVsTa: a.marginBySelectVsTa, testBestByDev: a.testBestByDev, testBestByTestTopK: a.testBestByTestTopK })) }) + '\n');
    return 0;
  }
  const pct = (x: number | null) => (x === null ? '-' : (100 * x).toFixed(1));
  const ci = (e: { ci: { lo: number; hi: number } | null }) => (e.ci ? `[${pct(e.ci.lo)}, ${pct(e.ci.hi)}]` : '');
  const pts = (x: number | null) => (x === null ? '-' : `${x >= 0 ? '+' : '-'}${(100 * Math.abs(x)).toFixed(1)}`);
  const ciPts = (e: { ci: { lo: number; hi: number } | null }) => (e.ci ? `[${pts(e.ci.lo)}, ${pts(e.ci.hi)}]` : '');
  const lines = ['arm          runs  test(best, chosen on select) [95% CI]  vs Task Arithmetic [95% CI]    test(best by dev) [95% CI]     best test in top-k (paper, optimistic)'];
  for (const a of summary.perArm) lines.push(`${a.arm.padEnd(12)} ${`${a.finished}/${a.repeats}`.padStart(4)}  ${pct(a.testBestBySelect.mean).padStart(5)} ${ci(a.testBestBySelect).padEnd(31)}  ${pts(a.marginBySelectVsTa.mean).padStart(5)} ${ciPts(a.marginBySelectVsTa).padEnd(24)}  ${pct(a.testBestByDev.mean).padStart(5)} ${ci(a.testBestByDev).padEnd(24)}  ${pct(a.testBestByTestTopK.mean).padStart(5)} ${ci(a.testBestByTestTopK)}`);
  lines.push('', `summary: ${join(out, 'summary.json')}`, `report: ${join(out, 'report.html')}`);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
