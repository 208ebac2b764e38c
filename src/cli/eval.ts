import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, intOption, type Command } from './command.ts';
import { ProgressBar } from './progress.ts';

const usage = `selfdev eval (--model DIR | --endpoint URL --model-name NAME) [options]

Greedy evaluation on a GSM8k-format benchmark, scored like lm-evaluation-harness gsm8k
(strict-match and flexible-extract exact match). Prints both accuracies (and per family for the
tiny world); --out writes one JSON record per question.

Options:
  --bench B            tiny | gsm8k:PATH (a GSM8k JSONL file) | math:PATH (MATH JSONL:
                       problem, solution with its \boxed{} answer, optional type)    [tiny]
  --task T             lm-eval's task protocol (prompt, shots, stops, scoring):
                       gsm8k | gsm8k_cot for gsm8k:PATH                              [gsm8k]
                       minerva_math | hendrycks_math for math:PATH          [minerva_math]
                       (MATH has one metric, exact_match: printed as strict and flexible)
  --split S            dev | test | select | all. tiny: world/bench/{dev,test,select}.jsonl
                       (select: the 1,000-problem selection split the loop chooses its best
                       program on; all = dev + test); gsm8k: dev = 100 problems carved with
                       seed 0, test = the rest, no select                          [dev]
  --limit N            only the first N problems of the split
  --shots K            few-shot examples (tiny is zero-shot) [the task's: gsm8k 5, gsm8k_cot 8,
                       minerva_math 4 fixed Minerva exemplars, hendrycks_math 0].
                       gsm8k: drawn from the train file as lm-eval's default sampler does
                       (Python Random(--seed).sample, one draw per problem in file order);
                       gsm8k_cot: the first K of its 8 fixed exemplars
  --train PATH         shot pool [train.jsonl beside the bench file]
  --seed N             lm-eval's fewshot_random_seed [1234]
  --shot-sampler S     lm-eval | seeded (selfdev's older mulberry32 per-problem draw) [lm-eval]
  --calculator         calculator-augmented decoding (<<EXPR= → VALUE>> forced) [on for tiny]
  --no-calculator      turn it off                                              [off for gsm8k]
  --max-tokens N       new tokens per question [tiny 128, gsm8k 256]
  --batch N            builtin: rows per forward batch [32]
  --endpoint URL       an OpenAI-compatible server (…/v1), with --model-name NAME
  --concurrency N      endpoint: requests in flight [4]
  --timeout S          endpoint: seconds per request [120]
  --retries N          endpoint: retries on 429/5xx/network errors [4]
  --out FILE.jsonl     per-question records
  --json               print one JSON object (summary) instead of text`;

export const command: Command = {
  name: 'eval',
  summary: 'Evaluate a model (folder or OpenAI-compatible endpoint) on tiny-world or GSM8k problems.',
  usage,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        model: { type: 'string' }, bench: { type: 'string' }, split: { type: 'string' }, limit: { type: 'string' },
        shots: { type: 'string' }, train: { type: 'string' }, seed: { type: 'string' }, task: { type: 'string' }, 'shot-sampler': { type: 'string' },
        calculator: { type: 'boolean' }, 'no-calculator': { type: 'boolean' }, 'max-tokens': { type: 'string' },
        batch: { type: 'string' }, endpoint: { type: 'string' }, 'model-name': { type: 'string' },
        concurrency: { type: 'string' }, timeout: { type: 'string' }, retries: { type: 'string' },
        out: { type: 'string' }, json: { type: 'boolean' },
      },
      allowPositionals: true,
    });
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const ev = await import('../eval/evaluate.ts');
    let spec: ReturnType<typeof ev.parseBenchSpec>;
    try {
      spec = ev.parseBenchSpec(values.bench ?? 'tiny');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const split = values.split ?? 'dev';
    if (split !== 'dev' && split !== 'test' && split !== 'select' && split !== 'all') throw new UsageError(`--split must be dev, test, select or all, got '${split}'`);
    if (split === 'select' && spec.kind !== 'tiny') throw new UsageError(`--split select is the tiny world's selection split; ${spec.kind}:PATH has dev, test and all`);
    if (values.calculator && values['no-calculator']) throw new UsageError('give --calculator or --no-calculator, not both');
    if (values.endpoint && values.model) throw new UsageError('give --model DIR (builtin engine) or --endpoint URL, not both');
    if (!values.endpoint && !values.model) throw new UsageError('give --model DIR or --endpoint URL --model-name NAME');
    if (values.endpoint && !values['model-name']) throw new UsageError('--endpoint needs --model-name NAME');
    if (values.model && !existsSync(values.model)) throw new UsageError(`model folder not found: ${values.model}`);
    const tiny = spec.kind === 'tiny';
    const { TASKS, TASK_NAMES, MATH_TASKS } = await import('../eval/tasks.ts');
    const taskName = (values.task ?? (spec.kind === 'math' ? 'minerva_math' : 'gsm8k')) as keyof typeof TASKS;
    if (!TASK_NAMES.includes(taskName)) throw new UsageError(`--task must be ${TASK_NAMES.join(', ')}, got '${values.task}'`);
    if ((spec.kind === 'math') !== MATH_TASKS.includes(taskName)) throw new UsageError(`--task ${taskName} does not score ${spec.kind === 'math' ? 'MATH (math:PATH takes minerva_math or hendrycks_math)' : `${spec.kind === 'tiny' ? 'the tiny world' : 'gsm8k:PATH'} (math tasks need --bench math:PATH)`}`);
    if (tiny && values.task !== undefined && taskName !== 'gsm8k') throw new UsageError(`the tiny world is scored as gsm8k zero-shot; --task ${taskName} applies to gsm8k:PATH`);
    const task = TASKS[taskName];
    const sampler = values['shot-sampler'] ?? 'lm-eval';
    if (sampler !== 'lm-eval' && sampler !== 'seeded') throw new UsageError(`--shot-sampler must be lm-eval or seeded, got '${sampler}'`);
    const shotsK = intOption(values.shots, 'shots', tiny ? 0 : task.defaultShots);
    if (tiny && shotsK > 0) throw new UsageError('the tiny world is evaluated zero-shot; --shots applies to gsm8k:PATH');
    if (task.fixedShots && shotsK > task.fixedShots.length) throw new UsageError(`--task ${taskName} has ${task.fixedShots.length} fixed exemplars; --shots ${shotsK} is more`);
    const seed = intOption(values.seed, 'seed', 1234);
    const calculator = values.calculator ? true : values['no-calculator'] ? false : tiny;
    const maxTokens = intOption(values['max-tokens'], 'max-tokens', tiny ? 128 : 256, 1);
    const limit = intOption(values.limit, 'limit', undefined, 1);

    let problems = ev.loadProblems(spec, split);
    if (limit !== undefined) problems = problems.slice(0, limit);
    let shots: { pool: Array<{ question: string; answer: string }>; k: number; seed: number; sampler: 'lm-eval' | 'seeded' } | undefined;
    if (spec.kind !== 'tiny' && shotsK > 0 && task.fixedShots) shots = { pool: [], k: shotsK, seed, sampler };
    else if (spec.kind !== 'tiny' && shotsK > 0) {
      const trainPath = values.train ?? join(dirname(spec.path), 'train.jsonl');
      if (!existsSync(trainPath)) throw new UsageError(`shot pool not found: ${trainPath} (give --train PATH or --shots 0)`);
      const { loadGsm8k } = await import('../eval/gsm8k.ts');
      const { loadMath } = await import('../eval/math.ts');
      shots = { pool: spec.kind === 'gsm8k' ? loadGsm8k(trainPath) : loadMath(trainPath), k: shotsK, seed, sampler };
    }

    const be = await import('../eval/backends.ts');
    const backend = values.endpoint
      ? new be.OpenAIBackend({
          endpoint: values.endpoint, modelName: values['model-name']!,
          concurrency: intOption(values.concurrency, 'concurrency', 4, 1), timeoutMs: intOption(values.timeout, 'timeout', 120, 1) * 1000,
          retries: intOption(values.retries, 'retries', 4),
        })
      : await be.BuiltinBackend.load(values.model!, { batchSize: intOption(values.batch, 'batch', 32, 1) });
    const bar = new ProgressBar('eval');
    let res;
    try {
      res = await ev.evaluate(backend, problems, {
        task: taskName, shots, maxTokens, calculator, chunk: values.endpoint ? 50 : Math.max(intOption(values.batch, 'batch', 32, 1), 50),
        onProgress: (d, t) => bar.update(d, t),
      });
    } finally {
      bar.done();
      await backend.close();
    }
    if (backend instanceof be.BuiltinBackend && backend.truncatedPrompts > 0) {
      console.error(`warning: ${backend.truncatedPrompts} prompt(s) were left-truncated to fit the model's context (max_position_embeddings − max-tokens)`);
    }
    if (values.out) {
      const out = resolve(values.out);
      mkdirSync(dirname(out), { recursive: true });
      const tmp = `${out}.tmp-${process.pid}`;
      writeFileSync(tmp, res.records.map((r) => JSON.stringify(r)).join('\n') + (res.records.length ? '\n' : ''));
      renameSync(tmp, out);
    }
    const bench = spec.kind === 'tiny' ? 'tiny' : `${spec.kind}:${spec.path}`;
    const shotText = !shots ? 'zero-shot' : task.fixedShots ? `${shots.k}-shot fixed exemplars` : `${shots.k}-shot ${sampler} seed ${seed}`;
    if (values.json) {
      console.log(JSON.stringify({ bench, split, n: res.n, strict: res.strict, flexible: res.flexible, perFamily: res.perFamily, seconds: res.seconds, settings: res.settings }));
    } else {
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      console.log(`${bench} ${split}: n=${res.n}  strict ${pct(res.strict)}  flexible ${pct(res.flexible)}  (${res.settings.backend}, ${taskName}, calculator ${calculator ? 'on' : 'off'}, ${shotText}, ${res.seconds.toFixed(1)}s)`);
      const fams = Object.entries(res.perFamily);
      if (fams.length) {
        const w = Math.max(...fams.map(([f]) => f.length));
        for (const [f, a] of fams) console.log(`  ${f.padEnd(w)}  n=${String(a.n).padStart(4)}  strict ${pct(a.strict).padStart(6)}  flexible ${pct(a.flexible).padStart(6)}`);
      }
    }
    return 0;
  },
};
