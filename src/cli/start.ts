import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, parseCli, type Command } from './command.ts';
import { command as runCommand } from './run.ts';

const usage = `selfdev start [--out DIR] [--config FILE] [--json] [--queue redis://HOST:PORT/DB]

The embedded default (what \`npm start\` runs): the Self-Developing loop on the shipped tiny world
(world/models: seed M0, experts E1–E3, out-of-domain experts X1–X2; world/models-2 is a second world by the same recipe) with the shipped builtin code
model as the algorithm factory (factory/model), configured by configs/embedded.yml — 3 iterations of
sample → sandbox → merge → dev score → preference pairs → DPO, then the choice of the best program
on the selection split (world/bench/select.jsonl), the top programs on test, the dev-tuned Task
Arithmetic baseline and the transfer test. Ends with the result table, the median
dev score of valid programs per iteration, and the report's path.

If DIR already holds this run, it is resumed (a finished run just prints its result again; delete
DIR or pass another --out to start over).

Options:
  --out DIR      run folder (default runs/embedded)
  --config FILE  loop config (default configs/embedded.yml)
  --json         print the final result as one JSON object
  --queue URL    evaluate on \`selfdev worker\` processes through this queue (docs/distributed.md)`;

export const command: Command = {
  name: 'start',
  summary: 'The embedded default (`npm start`): the whole loop on the shipped tiny world and builtin factory.',
  usage,
  async run(args) {
    const { values } = parseCli(() => parseArgs({ args, options: { out: { type: 'string' }, config: { type: 'string' }, json: { type: 'boolean' }, queue: { type: 'string' } } }));
    const config = values.config ?? 'configs/embedded.yml';
    const out = values.out ?? join('runs', 'embedded');
    if (!existsSync(config)) throw new UsageError(`config file not found: ${config} (run from the selfdev folder, or pass --config)`);
    for (const need of ['world/models/M0/model.safetensors', 'factory/model/model.safetensors']) {
      if (values.config === undefined && !existsSync(need)) throw new UsageError(`the embedded default needs ${need}, which is shipped with selfdev; rebuild it with npm run ${need.startsWith('world') ? 'world:train' : 'factory:train'}`);
    }
    const resuming = existsSync(join(out, 'run.sqlite'));
    process.stderr.write(`${resuming ? 'resuming' : 'starting'} the embedded run in ${resolve(out)} (${config})\n`);
    const rc = await runCommand.run([config, '--out', out, ...(resuming ? ['--resume'] : []), ...(values.json ? ['--json'] : []), ...(values.queue !== undefined ? ['--queue', values.queue] : [])]);
    if (rc !== 0 || values.json) return rc;
    const { RunStore } = await import('../store/store.ts');
    const store = RunStore.open(resolve(out), { readonly: true });
    try {
      const pct = (x: number | null) => (x === null ? '-' : (100 * x).toFixed(1));
      const lines = ['', 'iteration  T     valid/evaluated  median dev (valid)  best dev'];
      for (const s of store.iterationSummary()) {
        lines.push(`${String(s.t).padStart(9)}  ${(s.temperature ?? 0).toFixed(2)}  ${`${s.nValid}/${s.nEvaluated}`.padStart(15)}  ${pct(s.medianScreen).padStart(18)}  ${pct(s.bestDevStrict ?? s.bestScreen).padStart(8)}`);
      }
      process.stdout.write(lines.join('\n') + '\n');
    } finally {
      store.close();
    }
    return 0;
  },
};
