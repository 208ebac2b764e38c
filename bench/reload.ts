/**
 * bench:reload — a server started per candidate vs one server reloaded per candidate (eval.server
 * vs eval.server.reload), with `selfdev serve` on the tiny world (world/models: seed M0, experts
 * E1–E3, tensorFilter mlp), through the loop's own path: ProgramEvaluator merges each candidate in
 * memory, then `evaluateServed` (per-candidate: write the folder, start the server, score, stop it)
 * or `ServerSession.evaluate` (write the folder, POST /selfdev/load — the first candidate starts the
 * server —, score).
 *
 *   npm run bench:reload -- [--candidates 6] [--questions 20] [--max-tokens 96]
 *
 * Candidates: task arithmetic at λ 0.2 … 1.0 and single experts (programs run in the sandbox),
 * scored greedily with the calculator on the first --questions tiny-world dev problems (zero-shot),
 * the same candidates in both modes. Reported per mode: seconds per candidate (wall, merge
 * excluded; reload mode: the first start and the final stop spread over all candidates, and
 * `reload_mode_steady_s` for the candidates after the first), and its parts (write, start or reload,
 * scoring, stop); `identical` says whether both modes gave the same scores for every candidate. The
 * final line is one JSON object.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { resolveConfig } from '../src/loop/config.ts';
import { memoryEvaluator, openEvalContext } from '../src/loop/pool.ts';
import { evaluateServed, type ServedEvalResult } from '../src/eval/served.ts';
import { ServerSession } from '../src/eval/served-session.ts';

const { values } = parseArgs({ options: { candidates: { type: 'string', default: '6' }, questions: { type: 'string', default: '20' }, 'max-tokens': { type: 'string', default: '96' } } });
const nCand = Number(values.candidates);
const nQ = Number(values.questions);
const maxTokens = Number(values['max-tokens']);
const ROOT = resolve(import.meta.dirname, '..');

const server = { command: `node ${JSON.stringify(resolve(ROOT, 'bin/selfdev.mjs'))} serve "$MODEL" --port "$PORT" --name merged --quiet`, model: 'merged', readyTimeoutSec: 120 };
const cfg = resolveConfig({
  name: 'bench-reload', workers: 1, tensorFilter: 'mlp',
  eval: { devSubset: nQ, maxTokens, calculator: true, shots: 0, server },
  world: {
    seedModel: 'world/models/M0', experts: ['world/models/E1_addsub', 'world/models/E2_groups', 'world/models/E3_units'], oodExperts: [],
    dev: 'world/bench/dev.jsonl', test: 'world/bench/test.jsonl', select: 'world/bench/select.jsonl', algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js',
  },
});
const programs = [
  ...[0.3, 0.5, 0.8, 1.0, 0.2].map((l) => `function merge(tv, ctx) { return torch.stack(tv).sum(0).mul(${l}); }`),
  ...[0, 1, 2].map((e) => `function merge(tv, ctx) { return tv[${e}]; }`),
].slice(0, nCand);
if (programs.length < nCand) throw new Error(`at most 8 candidates, got --candidates ${nCand}`);

const ctx = await openEvalContext(cfg, ROOT);
const ev = memoryEvaluator(ctx);
const problems = ctx.sets.subset;
const weights: Map<string, Float32Array>[] = [];
for (const code of programs) {
  const m = await ev.mergeProgram(code, 1);
  if (!('weights' in m)) throw new Error(`candidate failed: ${m.message}`);
  weights.push(m.weights);
}
const base = { server, seedDir: ev.seedDir, config: ev.world.config, problems, maxTokens, calculator: true, task: cfg.eval.task };

type Row = { s: number; r: ServedEvalResult };
async function mode(run: (w: Map<string, Float32Array>) => Promise<ServedEvalResult>): Promise<Row[]> {
  const rows: Row[] = [];
  for (const w of weights) {
    const t0 = performance.now();
    const r = await run(w);
    rows.push({ s: (performance.now() - t0) / 1000, r });
    process.stderr.write(`  ${(rows.at(-1)!.s).toFixed(2)} s  strict ${r.result.strict.toFixed(3)}  start/reload ${(r.timings.startMs / 1000).toFixed(2)} s\n`);
  }
  return rows;
}
process.stderr.write(`per-candidate mode (${programs.length} candidates, ${problems.length} questions):\n`);
const per = await mode((w) => evaluateServed({ ...base, weights: w }));
process.stderr.write('reload mode:\n');
const session = new ServerSession({ ...server, reload: {} });
const tClose = performance.now();
let reload: Row[];
try {
  reload = await mode((w) => session.evaluate({ ...base, server: { ...server, reload: {} }, weights: w }));
} finally {
  await session.close();
}
const closeS = (performance.now() - tClose) / 1000 - reload.reduce((a, r) => a + r.s, 0);
await ctx.close();

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const part = (rows: Row[], k: keyof ServedEvalResult['timings'], from = 0) => r3(mean(rows.slice(from).map((x) => x.r.timings[k] / 1000)));
const perS = mean(per.map((x) => x.s));
// reload mode: the first candidate starts the server; the server stop is paid once at the end
const reloadS = (reload.reduce((a, x) => a + x.s, 0) + closeS) / reload.length;
const out = {
  candidates: programs.length,
  questions: problems.length,
  max_tokens: maxTokens,
  per_candidate_s: r3(perS),
  reload_mode_s: r3(reloadS),
  ratio: r3(perS / reloadS),
  // after the first candidate (the server already up): what each further candidate costs
  reload_mode_steady_s: r3(mean(reload.slice(1).map((x) => x.s))),
  steady_ratio: r3(perS / mean(reload.slice(1).map((x) => x.s))),
  per_candidate_start_s: part(per, 'startMs'),
  per_candidate_stop_s: part(per, 'stopMs'),
  reload_s: part(reload, 'startMs', 1),
  first_start_s: r3(reload[0].r.timings.startMs / 1000),
  write_s: part(per, 'writeMs'),
  score_s: { per_candidate: part(per, 'evalMs'), reload: part(reload, 'evalMs') },
  stats: session.stats,
  identical: per.every((p, i) => JSON.stringify(p.r.result.perFamily) === JSON.stringify(reload[i].r.result.perFamily) && p.r.result.strict === reload[i].r.result.strict && p.r.result.flexible === reload[i].r.result.flexible),
  strict: per.map((p) => r3(p.r.result.strict)),
};
console.log(JSON.stringify(out));
