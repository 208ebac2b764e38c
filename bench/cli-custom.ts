/**
 * `node --import tsx bench/cli-custom.ts [--world DIR] [--out DIR] [--no-loop] [--again] [--ipc] [--keep]`:
 * `selfdev merge` with `merge_method: custom` against the builtin task_arithmetic, in one run.
 *
 * On a world that bench/scale.ts built (default .bench/scale-1.5b: bf16 seed + 3 experts; read
 * only, outputs go to --out, default tmp/cli-custom), back to back:
 *   1. `selfdev merge` task_arithmetic (builtin kernel, weight 0.4 per expert, MLP tensors);
 *   2. `selfdev merge` merge_method: custom with algorithms/task_arithmetic.js (the same formula
 *      as a sandboxed program), same tensors;
 *   3. unless --no-loop, the loop's streamed merge of the same program (StreamWorld.write with
 *      makeFileMergeFunction, in this process) and a byte-for-byte comparison of every tensor of
 *      its output with 2's;
 *   with --again, 2 and 1 once more in that order (ratios from the sums: against order effects);
 *   4. with --ipc, the custom merge of layer 0's MLP tensors only (the other tensors copied), in
 *      this process, by the file route, by the previous route (`route: 'ipc'`: task vectors sent
 *      to the sandbox child over IPC), and by the file route again; outputs compared byte for byte.
 * Each with its time, its peak RSS (process tree: the CLI or this process plus the sandbox child,
 * sampled from /proc every 50 ms), and the load average before and after. The last line is one
 * JSON object. Outputs are deleted at the end unless --keep.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runSelfdevMerge, treeRss } from './proc-rss.ts';
import { Checkpoint } from '../src/io/checkpoint.ts';
import { Sandbox, validateAlgorithm, makeFileMergeFunction } from '../src/sandbox/index.ts';
import { StreamWorld, defaultMaxMergeMemory } from '../src/merge/stream-world.ts';
import { parseMergeConfig } from '../src/merge/config.ts';
import { runMerge } from '../src/merge/engine.ts';
import { loadCustomAlgorithm } from '../src/merge/custom.ts';

const ROOT = resolve(import.meta.dirname, '..');
const GiB = 2 ** 30;
const { values } = parseArgs({ options: { world: { type: 'string', default: join(ROOT, '.bench', 'scale-1.5b') }, out: { type: 'string', default: join(ROOT, 'tmp', 'cli-custom') }, 'no-loop': { type: 'boolean', default: false }, ipc: { type: 'boolean', default: false }, again: { type: 'boolean', default: false }, keep: { type: 'boolean', default: false } } });
const world = resolve(values.world!);
const outRoot = resolve(values.out!);
if (!existsSync(join(world, 'spec.json'))) throw new Error(`${world}: no spec.json (build the world with npm run bench:scale -- --build-only first)`);
const seed = join(world, 'seed');
const experts = [1, 2, 3].map((i) => join(world, `expert-${i}`)).filter((d) => existsSync(d));
const log = (s: string) => console.error(`[cli-custom] ${s}`);
const load = () => loadavg().map((x) => +x.toFixed(2));

mkdirSync(outRoot, { recursive: true });
const program = join(ROOT, 'algorithms', 'task_arithmetic.js');
const builtinCfg = join(outRoot, 'ta-builtin.yml');
writeFileSync(builtinCfg, `merge_method: task_arithmetic\nbase_model: ${seed}\nparameters: { normalize: false }\ninclude_tensors: ['.mlp.']\nmodels:\n${experts.map((m) => `  - model: ${m}\n    parameters: { weight: 0.4 }`).join('\n')}\n`);
const customCfg = join(outRoot, 'ta-custom.yml');
writeFileSync(customCfg, `merge_method: custom\nalgorithm: ${program}\nbase_model: ${seed}\ninclude_tensors: ['.mlp.']\nmodels:\n${experts.map((m) => `  - model: ${m}`).join('\n')}\n`);

interface Run {
  seconds: number;
  wall_seconds: number;
  peak_rss_gib: number;
  load_before: number[];
  load_after: number[];
}

async function runCli(cfg: string, out: string): Promise<Run> {
  const before = load();
  const r = await runSelfdevMerge(ROOT, cfg, out);
  return { seconds: +r.seconds.toFixed(2), wall_seconds: +r.wallSeconds.toFixed(2), peak_rss_gib: +(r.peakRss / GiB).toFixed(3), load_before: before, load_after: load() };
}

async function runLoop(out: string): Promise<Run> {
  const before = load();
  const t0 = performance.now();
  let peak = 0;
  const timer = setInterval(() => (peak = Math.max(peak, treeRss(process.pid))), 50);
  const sw = StreamWorld.open(seed, experts, 'mlp', { maxMemoryBytes: defaultMaxMergeMemory(totalmem()) });
  const sandbox = new Sandbox();
  try {
    const source = readFileSync(program, 'utf8');
    const v = await validateAlgorithm(source, { sandbox, seed: 7 });
    if (!v.ok) throw new Error(`${program} rejected: ${v.message}`);
    const s = await sw.write(out, { kind: 'program', fn: makeFileMergeFunction(source, sandbox, { seed: 7, limits: sw.limits() }), seed: 7 }, { overwrite: true });
    return { seconds: +s.seconds.toFixed(2), wall_seconds: +((performance.now() - t0) / 1000).toFixed(2), peak_rss_gib: +(Math.max(peak, treeRss(process.pid)) / GiB).toFixed(3), load_before: before, load_after: load() };
  } finally {
    clearInterval(timer);
    sandbox.close();
    sw.close();
  }
}

/** `selfdev merge` custom's code (cli/merge.ts: loadCustomAlgorithm + runMerge) in this process, by one route. */
async function runRoute(route: 'file' | 'ipc', out: string): Promise<Run & { merged: number }> {
  const cfg = parseMergeConfig({ merge_method: 'custom', algorithm: program, base_model: seed, include_tensors: ['layers.0.mlp.'], models: experts.map((m) => ({ model: m })) }, outRoot);
  const before = load();
  const t0 = performance.now();
  let peak = 0;
  const timer = setInterval(() => (peak = Math.max(peak, treeRss(process.pid))), 50);
  const custom = await loadCustomAlgorithm(cfg, { route });
  try {
    const s = await runMerge(cfg, out, { custom: custom.custom, overwrite: true });
    return { seconds: +s.seconds.toFixed(2), wall_seconds: +((performance.now() - t0) / 1000).toFixed(2), peak_rss_gib: +(Math.max(peak, treeRss(process.pid)) / GiB).toFixed(3), load_before: before, load_after: load(), merged: s.merged };
  } finally {
    clearInterval(timer);
    custom.close();
  }
}

/** Tensors of `a` that differ from `b`'s byte for byte. */
function differing(a: string, b: string): string[] {
  const A = Checkpoint.open(a);
  const B = Checkpoint.open(b);
  try {
    return A.tensorNames().filter((n) => !Buffer.from(A.readBytes(n)).equals(Buffer.from(B.readBytes(n))));
  } finally {
    A.close();
    B.close();
  }
}

const spec = JSON.parse(readFileSync(join(world, 'spec.json'), 'utf8')) as Record<string, unknown>;
log(`world ${world}: ${JSON.stringify(spec)}; load average ${load().join(' ')}`);
const outs = { builtin: join(outRoot, 'cli-ta-builtin'), custom: join(outRoot, 'cli-ta-custom'), loop: join(outRoot, 'loop-ta'), file0: join(outRoot, 'layer0-file'), ipc0: join(outRoot, 'layer0-ipc') };
try {
  const builtin = await runCli(builtinCfg, outs.builtin);
  log(`selfdev merge task_arithmetic (builtin): ${builtin.seconds} s, peak RSS ${builtin.peak_rss_gib} GiB`);
  const custom = await runCli(customCfg, outs.custom);
  log(`selfdev merge custom (task_arithmetic.js): ${custom.seconds} s, peak RSS ${custom.peak_rss_gib} GiB (${(custom.seconds / builtin.seconds).toFixed(2)}× builtin)`);
  let loop: Run | null = null;
  let diff: string[] | null = null;
  if (!values['no-loop']) {
    loop = await runLoop(outs.loop);
    log(`loop, streamed sandboxed TA: ${loop.seconds} s, peak RSS ${loop.peak_rss_gib} GiB`);
    diff = differing(outs.custom, outs.loop);
  }
  // --again: custom and builtin once more, in reverse order (builtin, custom, loop, custom, builtin), against order effects
  let custom2: Run | null = null;
  let builtin2: Run | null = null;
  if (values.again) {
    custom2 = await runCli(customCfg, outs.custom);
    log(`selfdev merge custom again: ${custom2.seconds} s, peak RSS ${custom2.peak_rss_gib} GiB`);
    builtin2 = await runCli(builtinCfg, outs.builtin);
    log(`selfdev merge task_arithmetic again: ${builtin2.seconds} s, peak RSS ${builtin2.peak_rss_gib} GiB`);
  }
  const customS = custom.seconds + (custom2?.seconds ?? 0);
  const builtinS = builtin.seconds + (builtin2?.seconds ?? 0);
  let routes: { file: Run & { merged: number }; ipc: Run & { merged: number }; file_again: Run & { merged: number }; identical: boolean } | null = null;
  if (values.ipc) {
    const file = await runRoute('file', outs.file0);
    const ipc = await runRoute('ipc', outs.ipc0);
    const again = await runRoute('file', outs.file0);
    routes = { file, ipc, file_again: again, identical: differing(outs.file0, outs.ipc0).length === 0 };
    log(`layer 0's ${file.merged} MLP tensors: file route ${file.seconds} s / ${again.seconds} s (peak ${file.peak_rss_gib} GiB), IPC route ${ipc.seconds} s (peak ${ipc.peak_rss_gib} GiB), identical ${routes.identical}`);
  }
  console.log(JSON.stringify({
    world: spec,
    builtin,
    custom,
    loop,
    custom_again: custom2,
    builtin_again: builtin2,
    custom_vs_builtin: +(customS / builtinS).toFixed(2),
    custom_vs_loop: loop ? +(customS / (custom2 ? 2 : 1) / loop.seconds).toFixed(2) : null,
    custom_identical_to_loop: diff ? diff.length === 0 : null,
    differing_tensors: diff?.slice(0, 5) ?? null,
    layer0_routes: routes,
  }));
} finally {
  if (!values.keep) for (const d of Object.values(outs)) rmSync(d, { recursive: true, force: true });
}
