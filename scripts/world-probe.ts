/**
 * The world probe (src/world/probe.ts) on a trained world: baselines grid + experts alone and as
 * M0 + τ_i + per-expert weighting grid, operator priors, task-vector geometry, the world targets.
 *
 *   npm run world:probe                          # world/models; writes world/models/PROBE.md, probe.json, expert cards
 *   npm run world:probe -- --world DIR --jobs 2 [--no-write] [--json]
 *
 * Results are cached in DIR/../baselines.json (or --cache FILE) like `selfdev baselines`.
 * The last line is JSON: the targets and the headline test scores.
 *
 *   npm run world:probe -- --summarize 'world 1, seed 0=world/models/probe.json' 'world 1, seed 1=DIR/probe.json' ...
 *     the per-seed and mean table of several probes (training seeds of one recipe) and the targets on the mean.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/nn/index.ts';
import { formatProbe, formatSeedTable, probeWorld, writeProbe, type ProbeMetrics } from '../src/world/probe.ts';

const { values, positionals } = parseArgs({
  options: {
    world: { type: 'string', default: 'world/models' },
    cache: { type: 'string' },
    dev: { type: 'string', default: 'world/bench/dev.jsonl' },
    test: { type: 'string', default: 'world/bench/test.jsonl' },
    jobs: { type: 'string', default: '2' },
    'no-write': { type: 'boolean', default: false },
    summarize: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: true,
  strict: true,
});
if (values.summarize) {
  const probes = positionals.map((a) => {
    const k = a.lastIndexOf('=');
    if (k <= 0) throw new Error(`--summarize takes LABEL=PATH/probe.json arguments, got '${a}'`);
    const j = JSON.parse(readFileSync(a.slice(k + 1), 'utf8')) as { metrics?: ProbeMetrics };
    if (!j.metrics) throw new Error(`${a.slice(k + 1)}: no metrics (written by an older probe; rerun it)`);
    return { label: a.slice(0, k), metrics: j.metrics };
  });
  console.log(formatSeedTable(probes));
  process.exit(0);
}
if (positionals.length) throw new Error(`unexpected argument '${positionals[0]}' (use --world DIR)`);
if (values.help) {
  console.log('usage: world-probe [--world DIR] [--cache FILE] [--jobs N] [--dev FILE] [--test FILE] [--no-write]');
  process.exit(0);
}
const jobs = Number(values.jobs);
if (!(Number.isInteger(jobs) && jobs >= 1)) throw new Error(`--jobs must be a positive integer, got ${values.jobs}`);
await initBackend();
const dir = resolve(values.world!);
const t0 = performance.now();
const r = await probeWorld(dir, { jobs, dev: resolve(values.dev!), test: resolve(values.test!), cacheFile: resolve(values.cache ?? join(dirname(dir), 'baselines.json')), onProgress: (m) => console.error(`probe: ${m}`) });
console.log(formatProbe(r));
if (!values['no-write']) {
  writeProbe(dir, r);
  console.error(`wrote ${join(dir, 'PROBE.md')}, probe.json and the expert cards`);
}
console.log(JSON.stringify({ world: dir, seconds: (performance.now() - t0) / 1000, targets: r.targets.map((t) => ({ id: t.id, pass: t.pass, value: t.value })), summary: r.summary }));
