import { existsSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError, intOption, parseCli, type Command } from './command.ts';
import { queueUrlProblem } from '../loop/config.ts';

const usage = `selfdev worker --queue redis://HOST:PORT/DB --root DIR [--concurrency N] [--exit-when-idle SECONDS]

Evaluates candidates for runs started with \`selfdev run … --queue URL\` (or a config with a
distributed: block): takes jobs from the queue at URL, runs each in a child process (merge in
memory, score), and returns the scores. Start one per machine or GPU, by hand or from SLURM,
Kubernetes or Ray (docs/distributed.md).

Every job names the world files it needs (seed, experts, problem sets) relative to the run's root;
the worker reads them under --root and compares their fingerprints with the controller's: a
mismatch (or a malformed job message) fails that job at once with the reason, never retried.

SIGTERM or SIGINT: take no new job, finish the running ones, exit 0 (a second signal exits at once;
the queue then gives the unfinished jobs to another worker after the lock lapses).

Options:
  --queue URL             the queue (redis://[:PASSWORD@]HOST:PORT/DB or rediss://…) (required)
  --root DIR              where the runs' world paths are resolved, e.g. the selfdev folder (required)
  --concurrency N         jobs at once, one child process each (default 1)
  --exit-when-idle SECS   exit after SECS without work (default: run until stopped)`;

/** The options of `selfdev worker` (checked; the --root folder's existence is checked when it runs). Launcher tests parse their command lines with it. */
export function parseWorkerArgs(args: string[]): { url: string; root: string; concurrency: number; exitWhenIdleSec?: number } {
  const { values, positionals } = parseCli(() => parseArgs({ args, options: { queue: { type: 'string' }, root: { type: 'string' }, concurrency: { type: 'string' }, 'exit-when-idle': { type: 'string' } }, allowPositionals: true }));
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (!values.queue) throw new UsageError('--queue redis://HOST:PORT/DB is required');
  if (!values.root) throw new UsageError('--root DIR is required (where the world paths of the jobs are resolved)');
  const problem = queueUrlProblem(values.queue);
  if (problem) throw new UsageError(`--queue ${problem}`);
  const concurrency = intOption(values.concurrency, 'concurrency', 1, 1);
  if (concurrency > 64) throw new UsageError(`--concurrency must be at most 64, got ${concurrency}`);
  const idle = values['exit-when-idle'];
  const exitWhenIdleSec = idle === undefined ? undefined : Number(idle);
  if (exitWhenIdleSec !== undefined && !(idle!.trim() !== '' && Number.isFinite(exitWhenIdleSec) && exitWhenIdleSec >= 0)) throw new UsageError(`--exit-when-idle must be a number of seconds >= 0, got '${idle}'`);
  return { url: values.queue, root: values.root, concurrency, ...(exitWhenIdleSec !== undefined ? { exitWhenIdleSec } : {}) };
}

export const command: Command = {
  name: 'worker',
  summary: 'Evaluate candidates from a run\'s queue (distributed evaluation on Redis; started by SLURM, Kubernetes, Ray or by hand).',
  usage,
  async run(args) {
    const o = parseWorkerArgs(args);
    if (!existsSync(o.root) || !statSync(o.root).isDirectory()) throw new UsageError(`--root ${o.root} is not a folder`);
    const { runQueueWorker } = await import('../distributed/worker.ts');
    let signals = 0;
    let requestStop = () => {};
    const stop = new Promise<void>((r) => (requestStop = r));
    const onSignal = () => {
      signals++;
      if (signals === 1) requestStop();
      else {
        process.stderr.write('second signal: exiting now (unfinished jobs go to another worker when their lock lapses)\n');
        process.exit(143);
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    try {
      return await runQueueWorker({ ...o, stop });
    } finally {
      process.removeListener('SIGTERM', onSignal);
      process.removeListener('SIGINT', onSignal);
    }
  },
};
