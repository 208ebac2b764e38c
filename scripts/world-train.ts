/**
 * Train the tiny world (default recipe, or a JSON recipe) into world/models/ (cached per stage).
 *
 *   npm run world:train                          # the default recipe into world/models/
 *   npm run world:train -- --steps-scale 0.1     # pilot: every stage at 10 % of its steps, into a temp dir
 *   npm run world:train -- --only E1_addsub --force --eval-limit 40 --recipe my-recipe.json --out DIR
 *
 * Cached models that lack the recipe's eval splits are evaluated (unless --no-eval).
 * Prints a progress line (TTY), a summary table and the total wall time; the last line is JSON.
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_RECIPE, ROLES, validateRecipe, withSeedOffset } from '../src/world/recipe.ts';
import type { Recipe, Role } from '../src/world/recipe.ts';
import { trainWorld } from '../src/world/train-world.ts';
import type { WorldEvent } from '../src/world/train-world.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    recipe: { type: 'string' },
    only: { type: 'string' },
    force: { type: 'boolean', default: false },
    'no-eval': { type: 'boolean', default: false },
    'eval-limit': { type: 'string' },
    'steps-scale': { type: 'string' },
    'seed-offset': { type: 'string' },
    'seed-roles': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help) {
  console.log('usage: world-train [--out DIR] [--recipe FILE.json] [--only a,b] [--force] [--no-eval] [--eval-limit N] [--steps-scale F]\n' +
    '                   [--seed-offset K [--seed-roles expert,ood,oracle]]   (other training seeds: +1000·K on those roles; default all roles = a second world)');
  process.exit(0);
}

let recipe: Recipe = values.recipe ? (JSON.parse(readFileSync(values.recipe, 'utf8')) as Recipe) : DEFAULT_RECIPE;
validateRecipe(recipe);
if (values['seed-offset'] !== undefined) {
  const roles = values['seed-roles'] === undefined ? ROLES : (values['seed-roles'].split(',').map((x) => x.trim()) as Role[]);
  recipe = withSeedOffset(recipe, Number(values['seed-offset']), roles);
}
let defaultOut = 'world/models';
if (values['steps-scale'] !== undefined) {
  const f = Number(values['steps-scale']);
  if (!(f > 0 && f <= 1)) throw new Error(`--steps-scale must be in (0, 1], got ${values['steps-scale']}`);
  recipe = {
    ...recipe,
    name: `${recipe.name}-x${f}`,
    stages: recipe.stages.map((s) => {
      const steps = Math.max(1, Math.round(s.steps * f));
      return { ...s, steps, warmup: Math.min(s.warmup, steps) };
    }),
  };
  defaultOut = join(tmpdir(), 'selfdev-world-pilot');
}
const evalLimit = values['eval-limit'] !== undefined ? Number(values['eval-limit']) : undefined;
if (evalLimit !== undefined && !(Number.isInteger(evalLimit) && evalLimit > 0)) throw new Error(`--eval-limit must be a positive integer, got ${values['eval-limit']}`);
const out = values.out ?? defaultOut;
const tty = process.stderr.isTTY;
const t0 = performance.now();
let current = '';
const onProgress = (e: WorldEvent) => {
  if (e.kind === 'start') {
    current = `[${e.index + 1}] ${e.stage}`;
    if (!tty) console.error(`${current}: training ${e.steps} steps`);
  } else if (e.kind === 'skip') console.error(`[${e.index + 1}/${e.total}] ${e.stage}: cached`);
  else if (e.kind === 'step' && tty) {
    const i = e.info;
    process.stderr.write(`\r${current} step ${i.step}/${i.steps} loss ${i.loss.toFixed(4)} ${Math.round(i.tokPerSec)} tok/s   `);
  } else if (e.kind === 'eval') {
    if (tty) process.stderr.write(`\r${current} evaluating ${e.split}...                          `);
  } else if (e.kind === 'done') {
    if (tty) process.stderr.write('\n');
    const r = e.result;
    if (r.lossCheck && !r.lossCheck.ok) console.error(`WARNING: ${e.stage}: final loss ${r.finalLoss.toFixed(4)} is above its bound ${r.lossCheck.max} (see its README.md)`);
    console.error(`${current}: done in ${r.seconds.toFixed(1)} s, ${Math.round(r.tokens / r.seconds)} tok/s, loss ${r.finalLoss.toFixed(4)}${r.eval.dev ? `, dev ${(100 * r.eval.dev.strict).toFixed(1)} %` : ''}`);
  }
};

const reports = await trainWorld(recipe, out, {
  only: values.only ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
  force: values.force,
  evalSplits: values['no-eval'] ? [] : undefined,
  evalCached: !values['no-eval'],
  evalLimit,
  onProgress,
});
const wall = (performance.now() - t0) / 1000;

const pct = (x: number | undefined) => (x === undefined ? '–' : (100 * x).toFixed(1));
const fams = [...new Set(reports.flatMap((r) => Object.keys(r.eval.dev?.perFamily ?? {})))].sort();
const header = ['model', 'role', 'steps', 'seconds', 'tok/s', 'loss', '‖τ‖/‖M0‖', 'dev strict/flex', ...fams];
const rows = reports.map((r) => [
  r.name + (r.cached ? ' (cached)' : ''), r.role, String(r.steps), r.seconds.toFixed(1), String(Math.round(r.tokens / r.seconds)), r.finalLoss.toFixed(3),
  r.tau ? r.tau.all.toFixed(4) : '–', r.eval.dev ? `${pct(r.eval.dev.strict)}/${pct(r.eval.dev.flexible)}` : '–',
  ...fams.map((f) => (r.eval.dev?.perFamily[f] ? `${pct(r.eval.dev.perFamily[f].strict)}/${pct(r.eval.dev.perFamily[f].flexible)}` : '–')),
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
console.log(line(header));
for (const r of rows) console.log(line(r));
const trained = reports.filter((r) => !r.cached);
const tokens = trained.reduce((s, r) => s + r.tokens, 0);
const trainSecs = trained.reduce((s, r) => s + r.seconds, 0);
console.log(`total wall time ${wall.toFixed(1)} s (training ${trainSecs.toFixed(1)} s for ${tokens} tokens${trainSecs > 0 ? `, ${Math.round(tokens / trainSecs)} tok/s` : ''}) → ${out}`);
console.log(JSON.stringify({ recipe: recipe.name, out, wallSeconds: wall, trainSeconds: trainSecs, tokens, tokPerSec: trainSecs > 0 ? tokens / trainSecs : null, models: reports.map((r) => ({ name: r.name, role: r.role, cached: r.cached, steps: r.steps, seconds: r.seconds, tokens: r.tokens, tau: r.tau?.all ?? null, dev: r.eval.dev ? { strict: r.eval.dev.strict, flexible: r.eval.dev.flexible } : null })) }));
