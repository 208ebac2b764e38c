import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { liveProcesses } from '../io/testing.ts';
import { makeMicroWorld } from '../world/testing.ts';
import { resolveConfig, type LoopConfig } from '../loop/config.ts';
import { memoryEvaluator, openEvalContext, runJob, WorkerPool, type EvalContext, type EvalJob, type JobResult } from '../loop/pool.ts';
import { evaluateServed, type ServerProcess } from './served.ts';
import { BuiltinBackend } from './backends.ts';
import { evaluate } from './evaluate.ts';
import { buildPrompt } from './prompt.ts';
import { Llama, encodePair, loadModel, train } from '../nn/index.ts';
import { saveMergedModel } from '../nn/checkpoint.ts';
import { requireEngineTokenizer } from '../nn/load-tokenizer.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
// Everything this file writes (micro world, served checkpoints, workers' temp folders) goes to a private
// TMPDIR, so "no served folder left behind" is checked on a folder nobody else writes to.
const PRIV = mkdtempSync(join(tmpdir(), 'selfdev-served-test-'));
process.env.TMPDIR = PRIV;
process.on('exit', () => rmSync(PRIV, { recursive: true, force: true }));

const SERVE = (name: string) => `node ${JSON.stringify(join(ROOT, 'bin/selfdev.mjs'))} serve "$MODEL" --port "$PORT" --name ${name} --quiet`;
const SERVER = { command: SERVE('merged'), model: 'merged', readyTimeoutSec: 60 };
const MAX_TOKENS = 12;

const worldP = makeMicroWorld(join(PRIV, 'world'), { nExperts: 2, nOod: 1, nDev: 4, nTest: 4, trainSteps: 60 });
const config = async (server?: Record<string, unknown>): Promise<LoopConfig> =>
  resolveConfig({
    name: 'served', seed: 3, tensorFilter: 'all',
    // the micro world's protocol with and without a server (eval.server alone would default to lm-eval's 5-shot, no calculator)
    eval: { maxTokens: MAX_TOKENS, batchSize: 8, devSubset: 2, ...(server ? { server, shots: 0, calculator: true } : {}) },
    world: { ...(await worldP), algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
  });
let ctxP: Promise<EvalContext> | null = null;
const inProcess = () => (ctxP ??= config().then((c) => openEvalContext(c, ROOT)));
after(async () => {
  if (ctxP) (await ctxP).close();
});

/** Expert 0 alone: answers half of the problems (a non-trivial score). */
const EXPERT0 = 'function merge(tv, ctx) { return tv[0]; }';
const mergedWeights = async (code: string) => {
  const m = await memoryEvaluator(await inProcess()).mergeProgram(code, 1);
  assert.ok('weights' in m, 'merge succeeded');
  return m.weights;
};

/** Served checkpoint folders left in the private TMPDIR. */
const servedDirs = () => readdirSync(PRIV).filter((n) => n.startsWith('selfdev-served-'));

/** Live processes started for a served evaluation of this file (found by the env the wrapper sets), with their command lines. */
function servedProcesses(): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
      if (!env.some((e) => e.startsWith(`SELFDEV_SERVED_DIR=${PRIV}`))) continue;
      const state = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]?.[0];
      if (state !== 'Z') out.push(`${d}: ${readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ')}`);
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return out;
}

/** Members (not zombies) of process group `pgid`, from the tests' own /proc listing (independent of served.ts's check). */
function groupMembers(pgid: number): string[] {
  return liveProcesses().filter((p) => p.pgid === pgid).map((p) => `${p.pid} ${p.args}`);
}

async function assertCleanedUp(pgids: number[] = []): Promise<void> {
  assert.deepEqual(servedDirs(), [], 'no served checkpoint folder left');
  assert.deepEqual(servedProcesses(), [], 'no server process left');
  for (const g of pgids) assert.deepEqual(groupMembers(g), [], `process group ${g} is gone`);
}

test('eval.server config: defaults, validation errors name the field; no server = in-process as before', async () => {
  const w = { seedModel: 's', experts: ['e'] };
  assert.equal(resolveConfig({ world: w }).eval.server, undefined);
  const c = resolveConfig({ world: w, eval: { server: { command: 'x', model: 'm' } } });
  assert.deepEqual(c.eval.server, { command: 'x', model: 'm', readyTimeoutSec: 600 });
  const bad = (server: unknown, re: RegExp) => assert.throws(() => resolveConfig({ world: w, eval: { server } }, 'my.yml'), re);
  bad({ command: 'x', model: 'm', port: 1 }, /my\.yml: unknown key eval\.server\.port/);
  bad({ model: 'm' }, /eval\.server\.command must be a non-empty string/);
  bad({ command: 'x', model: '' }, /eval\.server\.model must be a non-empty string/);
  bad({ command: 'x', model: 'm', readyTimeoutSec: 0 }, /readyTimeoutSec must be a number > 0/);
  bad({ command: 'x', model: 'm', url: 'localhost:8000' }, /eval\.server\.url must be an http\(s\) URL/);
  bad({ command: 'x', model: 'm', dtype: 'Q4' }, /eval\.server\.dtype must be F32, F16 or BF16/);
  bad('vllm serve', /eval\.server must be a mapping/);
  bad({ command: 'x', model: 'm', url: 'http://127.0.0.1:8000/v1' }, /eval\.server\.url has no \$PORT, but with workers: 2 each worker starts its own server/);
  assert.equal(resolveConfig({ world: w, workers: 1, eval: { server: { command: 'x', model: 'm', url: 'http://127.0.0.1:8000/v1' } } }).eval.server?.url, 'http://127.0.0.1:8000/v1');
  assert.equal(resolveConfig({ world: w, eval: { server: { command: 'x', model: 'm', url: 'http://localhost:${PORT}' } } }).eval.server?.url, 'http://localhost:${PORT}');
  assert.throws(() => resolveConfig({ world: w, eval: { servr: {} } }), /unknown key eval\.servr/);
  // merge.stream (the streamed merge world) needs a server; maxMemory is a size
  const server = { command: 'x', model: 'm' };
  assert.deepEqual(resolveConfig({ world: w, eval: { server }, merge: { stream: true, maxMemory: '20GiB' } }).merge, { stream: true, maxMemory: '20GiB' });
  assert.equal(resolveConfig({ world: w }).merge, undefined);
  assert.throws(() => resolveConfig({ world: w, merge: { stream: true } }, 'my.yml'), /my\.yml: merge\.stream: true writes every candidate as a checkpoint for a server to score; set eval\.server too/);
  assert.throws(() => resolveConfig({ world: w, eval: { server }, merge: { stream: 'yes' } }), /merge\.stream must be true or false/);
  assert.throws(() => resolveConfig({ world: w, eval: { server }, merge: { stream: true, maxMemory: 'lots' } }), /merge\.maxMemory: invalid size 'lots'/);
  assert.throws(() => resolveConfig({ world: w, eval: { server }, merge: { stream: true, max: 1 } }), /unknown key merge\.max \(known: stream, maxMemory, timeScale\)/);
});

test('saveMergedModel: an HF folder the builtin engine loads back exactly (F32) or rounded to BF16; seed config and tokenizer carried', async () => {
  const w = await worldP;
  const ctx = await inProcess();
  const weights = await mergedWeights(EXPERT0);
  const out = mkdtempSync(join(PRIV, 'ckpt-'));
  try {
    saveMergedModel(join(out, 'f32'), w.seedModel, memoryEvaluator(ctx).world.config, weights);
    const a = loadModel(join(out, 'f32'));
    for (const [n, x] of weights) assert.deepEqual(a.model.getWeights().get(n), x, n);
    a.model.dispose();
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'f32', 'config.json'), 'utf8')), JSON.parse(readFileSync(join(w.seedModel, 'config.json'), 'utf8')));
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) assert.equal(readFileSync(join(out, 'f32', f), 'utf8'), readFileSync(join(w.seedModel, f), 'utf8'), f);

    saveMergedModel(join(out, 'bf16'), w.seedModel, memoryEvaluator(ctx).world.config, weights, 'BF16');
    assert.equal(JSON.parse(readFileSync(join(out, 'bf16', 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
    const b = loadModel(join(out, 'bf16')).model;
    // bf16 = the top 16 bits of the f32 pattern, rounded to nearest even
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    const bf16 = (x: number) => {
      f[0] = x;
      bits[0] = ((bits[0]! + 0x7fff + ((bits[0]! >>> 16) & 1)) >>> 16) << 16;
      return f[0]!;
    };
    for (const [n, x] of weights) assert.deepEqual(b.getWeights().get(n), Float32Array.from(x, bf16), n);
    b.dispose();

    const partial = new Map(weights);
    partial.delete('model.norm.weight');
    assert.throws(() => saveMergedModel(join(out, 'bad'), w.seedModel, memoryEvaluator(ctx).world.config, partial), /eval\.server: merged weights have no tensor model\.norm\.weight/);
    assert.equal(existsSync(join(out, 'bad')), false, 'nothing written on error');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a candidate scored through `selfdev serve` gets exactly the in-process generations and scores', async (t) => {
  // Identical by construction here: greedy decoding with the same engine on the same f32 weights (the
  // checkpoint is written in F32), a byte-level tokenizer without merges (re-tokenising prompt + text
  // so far gives the same ids), and no calculator value forced at the token budget (these models never
  // write `<<…=`; backends.ts lists the budget difference).
  const ctx = await inProcess();
  const weights = await mergedWeights(EXPERT0);
  const problems = [...ctx.sets.dev, ...ctx.sets.test];
  const t0 = performance.now();
  const model = memoryEvaluator(ctx).world.model(weights);
  const local = await evaluate(BuiltinBackend.fromModel(model, memoryEvaluator(ctx).world.tokenizer, { batchSize: 8 }), problems, { maxTokens: MAX_TOKENS, calculator: true });
  model.dispose();
  const localMs = performance.now() - t0;
  let pgid = 0;
  const cfg = await config(SERVER);
  const s = await evaluateServed({ server: cfg.eval.server!, seedDir: (await worldP).seedModel, config: memoryEvaluator(ctx).world.config, weights, problems, maxTokens: MAX_TOKENS, calculator: true, onStart: (p: ServerProcess) => (pgid = p.pgid) });
  const pick = (r: typeof local) => r.records.map((x) => [x.generation, x.finish, x.calculator_calls, x.strict_correct, x.flexible_correct]);
  assert.deepEqual(pick(s.result), pick(local));
  assert.equal(s.result.strict, local.strict);
  assert.equal(s.result.flexible, local.flexible);
  assert.deepEqual(s.result.perFamily, local.perFamily);
  assert.ok(local.strict > 0 && local.strict < 1, `a non-trivial score (${local.strict})`);
  assert.equal(s.starts, 1);
  assert.match(s.result.settings.backend, /^openai:http:\/\/127\.0\.0\.1:\d+\/v1\/completions \(merged\)$/);
  const ms = (x: number) => Math.round(x);
  t.diagnostic(`in-process ${ms(localMs)} ms; served: write ${ms(s.timings.writeMs)} ms, start ${ms(s.timings.startMs)} ms, eval ${ms(s.timings.evalMs)} ms, stop ${ms(s.timings.stopMs)} ms`);
  await assertCleanedUp([pgid]);
});

test('with calculator calls (segmented requests through the server): the same generations, values and scores', async (t) => {
  // A model trained on the full GSM8k-format answers writes `6 * 8 = <<6*8=`: the in-process engine
  // forces `48>>` through its token hook; the endpoint path stops at each `=`, appends the value and
  // re-sends prompt + text so far. Budget (40 tokens) > answer length, so no forced value meets the budget.
  const ctx = await inProcess();
  const problems = [...ctx.sets.dev, ...ctx.sets.test];
  const tok = requireEngineTokenizer(memoryEvaluator(ctx).world.tokenizer, (await worldP).seedModel, 'training in this test'); // the tiny world's byte-level layout
  const m = Llama.fromWeights(memoryEvaluator(ctx).world.config, memoryEvaluator(ctx).world.seed);
  const ex = problems.map((p) => encodePair(tok, buildPrompt(p.question), ' ' + p.answer + '\n\n'));
  train(m, tok, ex, { steps: 150, lr: 1e-2, batchSize: ex.length, seqLen: 160, seed: 5, progress: false });
  const weights = m.getWeights();
  const local = await evaluate(BuiltinBackend.fromModel(m, tok, { batchSize: 8 }), problems, { maxTokens: 40, calculator: true });
  m.dispose();
  const cfg = await config(SERVER);
  const s = await evaluateServed({ server: cfg.eval.server!, seedDir: (await worldP).seedModel, config: memoryEvaluator(ctx).world.config, weights, problems, maxTokens: 40, calculator: true });
  const calls = local.records.reduce((a, r) => a + r.calculator_calls, 0);
  assert.ok(calls >= problems.length / 2, `the calculator fired (${calls} values forced)`);
  const pick = (r: typeof local) => r.records.map((x) => [x.generation, x.finish, x.calculator_calls, x.strict_correct, x.flexible_correct]);
  assert.deepEqual(pick(s.result), pick(local));
  assert.equal(s.result.strict, local.strict);
  assert.equal(s.result.flexible, local.flexible);
  assert.ok(local.strict > 0, `a non-zero score (${local.strict})`);
  t.diagnostic(`${calls} calculator values over ${problems.length} problems; served eval ${Math.round(s.timings.evalMs)} ms, in-process ${Math.round(local.seconds * 1000)} ms`);
  await assertCleanedUp();
});

test('ProgramEvaluator.score through the server: workers 1 (runJob) and workers 2 (pool, servers in parallel) equal in-process', async () => {
  const cfg = await config(SERVER);
  const jobs: EvalJob[] = [
    { code: EXPERT0, seed: 1, set: 'dev' },
    { code: 'function merge(tv, ctx) { return tv[1]; }', seed: 1, set: 'test' },
    { baseline: { lambda: 0.5 }, set: 'subset' },
  ];
  const ctx = await inProcess();
  const want: JobResult[] = [];
  for (const j of jobs) want.push(await runJob(ctx, j));
  const scores = (rs: JobResult[]) => rs.map((r) => (r.ok ? r.scores : r.verdict));
  assert.ok(want.every((r) => r.ok) && want.some((r) => r.ok && r.scores.strict > 0), 'valid jobs with some non-zero score');

  const sctx = await openEvalContext(cfg, ROOT);
  try {
    const one: JobResult[] = [];
    for (const j of jobs) one.push(await runJob(sctx, j));
    assert.deepEqual(scores(one), scores(want));
  } finally {
    sctx.close();
  }
  await assertCleanedUp();

  // merge.stream: the same jobs through the streamed world (each candidate written tensor by tensor into the served folder)
  const stream = await openEvalContext(resolveConfig({ ...cfg, merge: { stream: true, maxMemory: '4GiB' } }), ROOT);
  try {
    assert.equal(stream.ev.kind, 'stream');
    const st: JobResult[] = [];
    for (const j of jobs) st.push(await runJob(stream, j));
    assert.deepEqual(scores(st), scores(want));
    const bad = await runJob(stream, { code: 'function merge(tv, ctx) { if (ctx.shape[0] === 64) throw new Error("boom"); return tv[0]; }', seed: 1, set: 'dev' });
    assert.ok(!bad.ok && bad.verdict === 'runtime' && /boom/.test(bad.message), JSON.stringify(bad));
  } finally {
    stream.close();
  }
  await assertCleanedUp();

  const pool = new WorkerPool(2, cfg, ROOT);
  try {
    const two = await Promise.all(jobs.map((j) => pool.run(j)));
    assert.deepEqual(scores(two), scores(want));
  } finally {
    await pool.close();
  }
  await assertCleanedUp();
});

test('a server command that exits at once: clear error with the command, exit code and stderr; nothing left', async () => {
  const weights = await mergedWeights(EXPERT0);
  const ctx = await inProcess();
  let pgid = 0;
  const command = 'echo "fatal: cannot load weights from $MODEL" >&2; exit 3';
  const t0 = performance.now();
  await assert.rejects(
    evaluateServed({ server: { command, model: 'merged', readyTimeoutSec: 30 }, seedDir: (await worldP).seedModel, config: memoryEvaluator(ctx).world.config, weights, problems: ctx.sets.subset, maxTokens: MAX_TOKENS, calculator: true, onStart: (p) => (pgid = p.pgid) }),
    (e: Error) => {
      assert.match(e.message, /the server command exited with code 3 before it was ready/);
      assert.ok(e.message.includes(`command: ${command}`), e.message);
      assert.match(e.message, /stderr \(last lines\):\nfatal: cannot load weights from \/.*selfdev-served-[^/]+\/model/);
      return true;
    },
  );
  assert.ok(pgid > 0);
  assert.ok(performance.now() - t0 < 5000, 'stopped at once (the watchdog did not fire: it ignores SIGTERM once triggered)');
  await assertCleanedUp([pgid]);
});

test('a server that never becomes ready times out with a clear error; its process group is killed', async () => {
  const weights = await mergedWeights(EXPERT0);
  const ctx = await inProcess();
  let pgid = 0;
  const t0 = performance.now();
  await assert.rejects(
    evaluateServed({ server: { command: 'echo loading >&2; sleep 60', model: 'merged', readyTimeoutSec: 1 }, seedDir: (await worldP).seedModel, config: memoryEvaluator(ctx).world.config, weights, problems: ctx.sets.subset, maxTokens: MAX_TOKENS, calculator: true, onStart: (p) => (pgid = p.pgid) }),
    /the server did not answer GET http:\/\/127\.0\.0\.1:\d+\/v1\/models within 1 s \(last: ECONNREFUSED\) \(command: echo loading >&2; sleep 60;[^)]*\)\nstderr \(last lines\):\nloading/,
  );
  assert.ok(performance.now() - t0 < 10_000, 'stopped soon after the timeout');
  await assertCleanedUp([pgid]);
});

test('a server that serves another model id: clear error listing what it serves', async () => {
  const weights = await mergedWeights(EXPERT0);
  const ctx = await inProcess();
  await assert.rejects(
    evaluateServed({ server: { command: SERVE('other'), model: 'merged', readyTimeoutSec: 60 }, seedDir: (await worldP).seedModel, config: memoryEvaluator(ctx).world.config, weights, problems: ctx.sets.subset, maxTokens: MAX_TOKENS, calculator: true }),
    /the server is up but does not serve model 'merged' \(GET http:\/\/127\.0\.0\.1:\d+\/v1\/models lists: other\)/,
  );
  await assertCleanedUp();
});

test('a server that fails with "address already in use" is retried once on a new port', async () => {
  const weights = await mergedWeights(EXPERT0);
  const ctx = await inProcess();
  const mark = join(PRIV, 'first-start-done');
  // first start: fails like a server whose port was taken in between; second start: the real server
  const command = `if [ ! -e '${mark}' ]; then : > '${mark}'; echo "Error: listen EADDRINUSE: address already in use 127.0.0.1:$PORT" >&2; exit 1; fi; ${SERVE('merged')}`;
  const ports: number[] = [];
  const s = await evaluateServed({ server: { command, model: 'merged', readyTimeoutSec: 60 }, seedDir: (await worldP).seedModel, config: memoryEvaluator(ctx).world.config, weights, problems: ctx.sets.subset, maxTokens: MAX_TOKENS, calculator: true, onStart: (p) => ports.push(p.port) });
  assert.equal(s.starts, 2);
  assert.equal(ports.length, 2);
  assert.equal(s.result.n, ctx.sets.subset.length);
  await assertCleanedUp();
});

test('orphans: if the evaluating process dies (SIGKILL), the watchdog stops the server group and removes the folder', async () => {
  const served = pathToFileURL(join(ROOT, 'src/eval/served.ts')).href;
  const code = `
    const { ServerProcess } = await import(${JSON.stringify(served)});
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(tmpdir() + '/selfdev-served-');
    const p = new ServerProcess('sleep 60', 1, dir + '/model', dir);
    console.log(JSON.stringify({ pgid: p.pgid, dir }));
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((r) => child.stdout.once('data', (d: Buffer) => r(d.toString())));
  const { pgid, dir } = JSON.parse(line) as { pgid: number; dir: string };
  // wait until the command runs under the wrapper, then kill the parent hard
  for (let i = 0; i < 100 && !groupMembers(pgid).some((l) => l.includes('sleep 60')); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(groupMembers(pgid).some((l) => l.includes('sleep 60')), 'the server command is running');
  child.kill('SIGKILL');
  const until = Date.now() + 15_000;
  while (Date.now() < until && (groupMembers(pgid).length > 0 || existsSync(dir))) await new Promise((r) => setTimeout(r, 200));
  assert.equal(existsSync(dir), false, 'the served folder was removed');
  await assertCleanedUp([pgid]);
});
