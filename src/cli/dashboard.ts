import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { UsageError, intOption, parseCli, type Command } from './command.ts';

const usage = `selfdev dashboard RUN_DIR [--port N] [--host ADDR] [--interval MS]

A live web page of a run, while it runs and after: the current iteration and phase with progress,
the score distribution and best/median per iteration as they fill in, the leaderboard with each
program's code and verdict, pass rate by failure class, baselines and controls, DPO curves — the
report's own sections (a finished run's page shows exactly its report.html), updated in place.

Reads RUN_DIR/run.sqlite read-only (the run keeps writing; nothing is changed) and pushes each change
to the open pages (server-sent events). Without a store yet, or with one that cannot be read, the
page says so and keeps checking. Stop with Ctrl-C.

Options:
  --port N       TCP port (default 8484; 0 picks a free one)
  --host ADDR    address to listen on (default 127.0.0.1: this machine only; the page shows the
                 run's programs and configuration to whoever can reach it)
  --interval MS  how often the store is checked for new writes (default 1000)`;

export const command: Command = {
  name: 'dashboard',
  summary: 'Serve a live web page of a run (read-only), while it runs and after.',
  usage,
  async run(args) {
    const { values, positionals } = parseCli(() =>
      parseArgs({ args, allowPositionals: true, options: { port: { type: 'string' }, host: { type: 'string' }, interval: { type: 'string' } } }),
    );
    if (positionals.length !== 1) throw new UsageError(`expected RUN_DIR\n\n${usage}`);
    const port = intOption(values.port, 'port', 8484);
    if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
    const intervalMs = intOption(values.interval, 'interval', 1000, 50);
    const host = values.host ?? '127.0.0.1';
    const runDir = positionals[0]!;
    const { startDashboard } = await import('../dashboard/server.ts');
    let d;
    try {
      d = await startDashboard({ runDir, port, host, intervalMs });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (!['127.0.0.1', 'localhost', '::1'].includes(host)) process.stderr.write(`note: listening on ${host}: anyone who can reach it sees the run's programs and configuration (no authentication)\n`);
    process.stdout.write(`dashboard of ${resolve(runDir)}: ${d.url}  (${d.state().status.phase}; Ctrl-C stops)\n`);
    await new Promise<void>((done) => {
      const stop = () => {
        process.removeListener('SIGINT', stop);
        process.removeListener('SIGTERM', stop);
        done();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await d.close();
    return 0;
  },
};
