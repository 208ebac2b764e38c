import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { UsageError, parseCli, type Command } from './command.ts';
import { formatSeconds } from './progress.ts';

const usage = `selfdev run [CONFIG.yml] --out DIR [--resume]

Runs the Self-Developing loop (sample merge programs → sandbox cascade → in-memory merge onto the
seed → dev scoring → preference pairs → DPO on the factory), then scores the top-k on test,
compares with the seed and dev-tuned Task Arithmetic, applies the top-3 to the out-of-domain
experts, and writes DIR/report.html, DIR/best-algorithm.js and DIR/best-merge.yml.

Every finished step is stored in DIR/run.sqlite: after an interruption, rerun with --resume (the
stored config is used; the config argument may be omitted).

Options:
  --out DIR     run folder (required)
  --resume      continue the run in DIR
  --json        print the final result as one JSON object

Config (YAML; paths relative to the current directory; every key but world.* optional):
  name: my-run
  seed: 0
  iterations: 3
  samplesPerIteration: 100
  temperature: { t1: 1.2, decay: 0.2 }        # T_t = t1 / (1 + decay (t - 1))
  pWin: 0.03                                  # top share of valid programs → chosen
  pLose: 0.1                                  # bottom share → rejected
  carryTopK: 3                                # top-k of each earlier iteration, chosen again
  failedAsRejected: false
  tensorFilter: mlp                           # mlp | attention | all | re:REGEX | comma list of kinds
  eval: { devSubset: 40, promoteTopFraction: 0.25, maxTokens: 64, calculator: true, batchSize: 32 }
  topKTest: 15
  dpo: { beta: 0.01, lr: 1.0e-5, epochs: 2, nllAlpha: 0, batchSize: 4, maxLen: 512, command: "sh train.sh" }
                                              # command: external trainer (openai/llamacpp), env PAIRS, OUT, ITER
  factory: { kind: corpus }                   # or { kind: builtin, dir: DIR, maxTokens, maxPromptTokens }
                                              #    { kind: openai, url: URL, model: NAME }
                                              #    { kind: llamacpp, path: FILE.gguf }
  world:
    seedModel: models/seed
    experts: [models/e1, models/e2, models/e3]
    oodExperts: [models/o1]
    dev: world/bench/dev.jsonl
    test: world/bench/test.jsonl
    algorithms: algorithms                    # human algorithms (corpus arm)
    example: algorithms/task_arithmetic.js    # the prompt's one-shot example
  baselines: { lambdas: [0.2, 0.4, 0.6, 0.8, 1.0] }`;

export const command: Command = {
  name: 'run',
  summary: 'Run or resume the Self-Developing loop (factory → sandbox → merge → eval → DPO) and write its report.',
  usage,
  async run(args) {
    const { values, positionals } = parseCli(() =>
      parseArgs({ args, options: { out: { type: 'string' }, resume: { type: 'boolean' }, json: { type: 'boolean' } }, allowPositionals: true }),
    );
    if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
    if (!values.out) throw new UsageError('--out DIR is required');
    const out = resolve(values.out);
    const exists = existsSync(join(out, 'run.sqlite'));
    if (exists && !values.resume) throw new UsageError(`${values.out} already holds a run; pass --resume to continue it (or choose another --out)`);
    if (!exists && values.resume && positionals.length === 0) throw new UsageError(`${values.out} holds no run to resume; give a CONFIG.yml to start one`);
    let config: unknown;
    if (positionals[0] && !exists) {
      const file = positionals[0];
      if (!existsSync(file)) throw new UsageError(`config file not found: ${file}`);
      try {
        config = parseYaml(readFileSync(file, 'utf8'));
      } catch (e) {
        throw new UsageError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
      }
      const { resolveConfig } = await import('../loop/config.ts');
      try {
        resolveConfig(config, file);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    } else if (positionals[0]) {
      process.stderr.write(`note: resuming ${values.out} with its stored config (${positionals[0]} is not read)\n`);
    } else if (!exists) {
      throw new UsageError('a CONFIG.yml is required to start a run');
    }

    const { runLoop } = await import('../loop/controller.ts');
    const tty = process.stderr.isTTY === true;
    const start = performance.now();
    let t = 0;
    let total = 0;
    let done = 0;
    let nFresh = 0;
    let freshMs = 0;
    let lastFresh = performance.now();
    let valid = 0;
    let evaluated = 0;
    const scores: number[] = [];
    let phase = '';
    const draw = () => {
      if (!tty) return;
      const sorted = [...scores].sort((a, b) => a - b);
      const best = sorted.length ? (100 * sorted[sorted.length - 1]!).toFixed(1) : '-';
      const med = sorted.length ? (100 * sorted[Math.floor((sorted.length - 1) / 2)]!).toFixed(1) : '-';
      const eta = nFresh > 0 && total > done ? formatSeconds(((freshMs / nFresh) * (total - done)) / 1000) : '?';
      const rate = evaluated ? ((100 * valid) / evaluated).toFixed(0) + '%' : '-';
      const line = phase ? `final: ${phase}  elapsed ${formatSeconds((performance.now() - start) / 1000)}` : `iter ${t}  ${done}/${total}  pass ${rate}  dev best ${best} median ${med}  iteration ETA ${eta}`;
      process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 100) - 1)}`);
    };
    const ac = new AbortController();
    const onSig = () => ac.abort();
    process.once('SIGINT', onSig);
    let result;
    try {
      result = await runLoop(config, out, {
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type === 'iteration') {
            t = e.t;
            done = 0;
            total = 0;
            nFresh = 0;
            freshMs = 0;
          } else if (e.type === 'sampled') total = e.n;
          else if (e.type === 'evaluated') {
            total = e.total;
            done = e.done;
            evaluated++;
            if (e.verdict === 'ok') valid++;
            if (e.score !== null) scores.push(e.score);
            const now = performance.now();
            if (!e.cached) {
              nFresh++;
              freshMs += now - lastFresh;
            }
            lastFresh = now;
          } else if (e.type === 'phase') phase = e.phase;
          draw();
        },
      });
    } catch (e) {
      if (ac.signal.aborted) {
        if (tty) process.stderr.write('\n');
        process.stderr.write(`interrupted; continue with: selfdev run --out ${values.out} --resume\n`);
        return 130;
      }
      throw e;
    } finally {
      process.removeListener('SIGINT', onSig);
    }
    if (tty) process.stderr.write('\r\x1b[K');
    if (values.json) {
      process.stdout.write(JSON.stringify({ runDir: result.runDir, best: result.best && { hash: result.best.hash, dev: result.best.devStrict, test: result.best.testStrict }, baselines: result.baselines, report: result.reportPath }) + '\n');
      return 0;
    }
    const pct = (x: number | null) => (x === null ? '   -' : (100 * x).toFixed(1).padStart(5));
    const lines = ['rank  program       dev   test', ...result.leaderboard.map((r) => `${String(r.rank).padStart(4)}  ${r.hash.slice(0, 12)}  ${pct(r.devStrict)}  ${pct(r.testStrict)}`), '', 'baselines                    dev   test', ...result.baselines.map((b) => `${b.name.padEnd(28)} ${pct(b.devStrict)}  ${pct(b.testStrict)}`), ''];
    if (result.best) lines.push(`best: ${result.best.hash.slice(0, 12)} (dev ${pct(result.best.devStrict).trim()}, test ${pct(result.best.testStrict).trim()}) → ${join(out, 'best-algorithm.js')}, ${join(out, 'best-merge.yml')}`);
    lines.push(`report: ${result.reportPath}`);
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};
