import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, type Command, parseCli } from './command.ts';
import { RunStore } from '../store/store.ts';
import { writeReport } from '../report/report.ts';

const usage = `selfdev report RUN_DIR [--out FILE]

(Re)writes the self-contained HTML report of a run folder (default RUN_DIR/report.html) from its
run.sqlite, without changing the run. Works on unfinished runs too.`;

export const command: Command = {
  name: 'report',
  summary: "Write a run's self-contained report.html from its database.",
  usage,
  async run(args) {
    const parsed = parseCli(() => parseArgs({ args, allowPositionals: true, options: { out: { type: 'string' } } }));
    const [dir, ...extra] = parsed.positionals;
    if (!dir || extra.length > 0) throw new UsageError(`expected RUN_DIR\n\n${usage}`);
    const runDir = resolve(dir);
    if (!existsSync(join(runDir, 'run.sqlite'))) throw new UsageError(`${runDir} is not a run folder (no run.sqlite)`);
    const out = resolve(parsed.values.out ?? join(runDir, 'report.html'));
    const store = RunStore.open(runDir, { readonly: true });
    try {
      writeReport(store, out);
    } finally {
      store.close();
    }
    console.log(out);
    return 0;
  },
};
