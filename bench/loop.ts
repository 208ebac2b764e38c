/**
 * Wall time of loop iterations with 1 vs N evaluation workers on the micro world (same process,
 * interleaved repeats). `iter2` is the steady state (workers loaded); `total` runs from the call
 * of runLoop to the end of the last iteration, so it includes loading the world in process
 * (workers 1) or starting the workers (workers N); `run` is the whole run (+ test, baselines,
 * transfer, report). `batch` is the steady state without the rest of the loop: the same batch of
 * candidate jobs (every program in algorithms/ × 2 seeds, dev-subset scoring) run in process vs on
 * an already started pool, interleaved. Prints one JSON line.
 *
 *   npm run bench:loop -- [--repeats 2] [--samples 12] [--workers 2]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeTempDir } from '../src/io/testing.ts';
import { runLoop } from '../src/loop/controller.ts';
import { makeMicroWorld } from '../src/world/testing.ts';
import { resolveConfig } from '../src/loop/config.ts';
import { LocalRunner, WorkerPool, openEvalContext, type EvalJob, type JobRunner } from '../src/loop/pool.ts';

const { values } = parseArgs({ options: { repeats: { type: 'string', default: '2' }, samples: { type: 'string', default: '12' }, workers: { type: 'string', default: '2' } } });
const repeats = Number(values.repeats);
const samples = Number(values.samples);
const n = Number(values.workers);
for (const [k, v] of Object.entries({ repeats, samples, workers: n })) if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer`);

const tmp = makeTempDir('selfdev-loop-bench-');
try {
  const w = await makeMicroWorld(tmp.path, { nExperts: 2, nOod: 0, nDev: 8, nTest: 4, trainSteps: 60 });
  const cfg = {
    name: 'bench', seed: 3, iterations: 2, samplesPerIteration: samples, tensorFilter: 'all',
    eval: { devSubset: 4, maxTokens: 16, batchSize: 8, promoteTopFraction: 0.25 }, topKTest: 2, pWin: 0.2, pLose: 0.4,
    baselines: { lambdas: [0.5] },
    world: { ...w, algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
  };
  const times: Record<string, { total: number[]; iter2: number[]; run: number[] }> = { '1': { total: [], iter2: [], run: [] }, [n]: { total: [], iter2: [], run: [] } };
  const boards: Record<string, string> = {};
  for (let r = 0; r < repeats; r++) {
    for (const k of r % 2 === 0 ? [1, n] : [n, 1]) {
      const marks: Record<string, number> = { call: performance.now() };
      const res = await runLoop({ ...cfg, workers: k }, join(tmp.path, `run-${r}-${k}`), {
        onEvent: (e) => {
          if (e.type === 'iteration') marks[`start${e.t}`] = performance.now();
          if (e.type === 'phase' && marks.end === undefined) marks.end = performance.now(); // the first final phase (select) ends the iterations
          if (e.type === 'done') marks.done = performance.now();
        },
      });
      times[k]!.total.push(marks.end! - marks.call!);
      times[k]!.run.push(marks.done! - marks.call!);
      times[k]!.iter2.push(marks.end! - marks.start2!);
      boards[k] = JSON.stringify(res.leaderboard.map((x) => [x.hash, x.devSubset, x.devStrict, x.testStrict]));
      process.stderr.write(`repeat ${r} workers ${k}: 2 iterations ${times[k]!.total.at(-1)!.toFixed(0)} ms, iteration 2 ${times[k]!.iter2.at(-1)!.toFixed(0)} ms, whole run ${times[k]!.run.at(-1)!.toFixed(0)} ms\n`);
    }
  }
  // steady state: one batch of candidate jobs, in process vs a started pool
  const codes = readdirSync('algorithms').filter((f) => f.endsWith('.js')).sort().map((f) => readFileSync(join('algorithms', f), 'utf8'));
  const jobs: EvalJob[] = codes.flatMap((code, i) => [1, 2].map((k) => ({ code, seed: 1000 * k + i, set: 'subset' as const })));
  const rc = resolveConfig({ ...cfg, workers: n });
  const ctx = await openEvalContext(rc, process.cwd());
  const local = new LocalRunner(ctx);
  const pool = new WorkerPool(n, rc, process.cwd());
  const batch = async (r: JobRunner) => {
    const t0 = performance.now();
    let next = 0;
    const out = new Array<unknown>(jobs.length);
    await Promise.all(Array.from({ length: r.concurrency }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await r.run(jobs[i]!);
      }
    }));
    return { ms: performance.now() - t0, out: JSON.stringify(out, (k, v: unknown) => (/Ms$/.test(k) ? undefined : v)) };
  };
  const batchMs: Record<string, number[]> = { '1': [], [n]: [] };
  let sameBatch = true;
  try {
    await batch(local); // warm-up: both sandboxes and all workers loaded and used once
    await batch(pool);
    for (let r = 0; r < repeats; r++) {
      const [a, b] = r % 2 === 0 ? [await batch(local), await batch(pool)] : [await batch(pool), await batch(local)].reverse();
      batchMs['1']!.push(a!.ms);
      batchMs[n]!.push(b!.ms);
      sameBatch &&= a!.out === b!.out;
      process.stderr.write(`repeat ${r}: batch of ${jobs.length} jobs: workers 1 ${a!.ms.toFixed(0)} ms, workers ${n} ${b!.ms.toFixed(0)} ms\n`);
    }
  } finally {
    await pool.close();
    ctx.close();
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const m1 = { total: med(times['1']!.total), iter2: med(times['1']!.iter2), run: med(times['1']!.run) };
  const mn = { total: med(times[n]!.total), iter2: med(times[n]!.iter2), run: med(times[n]!.run) };
  console.log(JSON.stringify({
    bench: 'loop-workers', samplesPerIteration: samples, repeats, workers: n,
    ms: { workers1: m1, [`workers${n}`]: mn },
    speedup: { total: +(m1.total / mn.total).toFixed(2), iter2: +(m1.iter2 / mn.iter2).toFixed(2), run: +(m1.run / mn.run).toFixed(2) },
    sameLeaderboard: boards['1'] === boards[n],
    batch: { jobs: jobs.length, ms: { workers1: med(batchMs['1']!), [`workers${n}`]: med(batchMs[n]!) }, speedup: +(med(batchMs['1']!) / med(batchMs[n]!)).toFixed(2), sameResults: sameBatch },
  }));
} finally {
  tmp.cleanup();
}
