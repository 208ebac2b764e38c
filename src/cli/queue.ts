import { parseArgs } from 'node:util';
import { UsageError, parseCli, type Command } from './command.ts';

const usage = `selfdev queue status redis://HOST:PORT/DB [--json]

Prints the state of a distributed-evaluation queue (docs/distributed.md): jobs waiting, active,
completed and failed, the live workers (name and address), and the lock settings the last
controller published.`;

export const command: Command = {
  name: 'queue',
  summary: 'Show the state of a distributed-evaluation queue (jobs by state, live workers).',
  usage,
  async run(args) {
    const { values, positionals } = parseCli(() => parseArgs({ args, options: { json: { type: 'boolean' } }, allowPositionals: true }));
    const [sub, url, ...rest] = positionals;
    if (sub !== 'status') throw new UsageError(sub === undefined ? 'a subcommand is required: selfdev queue status URL' : `unknown subcommand '${sub}' (known: status)`);
    if (!url) throw new UsageError('the queue URL is required: selfdev queue status redis://HOST:PORT/DB');
    if (rest.length) throw new UsageError(`unexpected argument '${rest[0]}'`);
    const { queueUrlProblem } = await import('../loop/config.ts');
    const problem = queueUrlProblem(url);
    if (problem) throw new UsageError(`the queue URL ${problem}`);
    const { queueStatus } = await import('../distributed/status.ts');
    const s = await queueStatus(url);
    if (values.json) {
      process.stdout.write(JSON.stringify(s) + '\n');
      return 0;
    }
    const c = s.counts;
    const lines = [
      `queue ${s.queue} on ${new URL(url).host}${new URL(url).pathname}`,
      `jobs: ${c.waiting} waiting, ${c.active} active, ${c.delayed} delayed, ${c.completed} completed, ${c.failed} failed`,
      `workers: ${s.workers.length}${s.workers.map((w) => `\n  ${w.name} (${w.addr})`).join('')}`,
      s.settings ? `settings: lock ${s.settings.lockDurationMs} ms, ${s.settings.maxStalledCount} redelivery(ies) of a job whose worker is lost` : 'settings: none yet (no controller has used this queue)',
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};
