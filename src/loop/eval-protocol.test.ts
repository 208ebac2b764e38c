import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { main } from '../cli/main.ts';
import { startCannedServer } from '../eval/canned-server.ts';
import { TASKS } from '../eval/tasks.ts';
import { resolveConfig } from './config.ts';
import { runLoop } from './controller.ts';
import { loadShotSpec } from './eval-protocol.ts';
import { checkRunPaths } from './run-paths.ts';
import { makeMicroWorld } from './testing.ts';
import { captureConsole } from '../cli/testing.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const W = { seedModel: 's', experts: ['e'], dev: 'data/dev.jsonl' };
const SERVER = { command: 'x', model: 'm' };

test('eval protocol defaults: the tiny world as before; with eval.server lm-eval gsm8k (5-shot, 256 tokens, no calculator)', () => {
  const tiny = resolveConfig({ world: W }).eval;
  assert.deepEqual([tiny.task, tiny.shots, tiny.maxTokens, tiny.calculator, tiny.shotSeed, tiny.train], ['gsm8k', 0, 96, true, 1234, undefined]);
  const srv = resolveConfig({ world: W, eval: { server: SERVER } }).eval;
  assert.deepEqual([srv.task, srv.shots, srv.maxTokens, srv.calculator, srv.shotSeed, srv.train], ['gsm8k', 5, 256, false, 1234, 'data/train.jsonl']);
  // explicit keys win, in both settings
  const set = resolveConfig({ world: W, eval: { server: SERVER, shots: 3, maxTokens: 100, calculator: true, shotSeed: 9, train: 'x/t.jsonl' } }).eval;
  assert.deepEqual([set.shots, set.maxTokens, set.calculator, set.shotSeed, set.train], [3, 100, true, 9, 'x/t.jsonl']);
  assert.equal(resolveConfig({ world: W, eval: { shots: 2 } }).eval.train, 'data/train.jsonl', 'in process too when asked');
  // gsm8k_cot: its 8 fixed exemplars, no pool
  const cot = resolveConfig({ world: W, eval: { server: SERVER, task: 'gsm8k_cot' } }).eval;
  assert.deepEqual([cot.shots, cot.train], [8, undefined]);
  assert.equal(resolveConfig({ world: W, eval: { server: SERVER, shots: 0, train: 'x' } }).eval.train, undefined, 'no pool without shots');
  // a stored config from before eval.shots existed resumes zero-shot, as it was scored
  const legacy = { world: W, eval: { devSubset: 40, promoteTopFraction: 0.25, maxTokens: 96, calculator: true, batchSize: 32, testAll: false, server: { ...SERVER, readyTimeoutSec: 600 } } };
  assert.equal(resolveConfig(legacy, 'stored', { stored: true }).eval.shots, 0);
  // a resolved config resolves to itself (what the store keeps and resume reads back)
  const c = resolveConfig({ world: W, eval: { server: SERVER } });
  assert.deepEqual(resolveConfig(JSON.parse(JSON.stringify(c)), 'stored', { stored: true }), c);
  const bad: Array<[unknown, RegExp]> = [
    [{ task: 'minerva_math' }, /eval\.task must be gsm8k or gsm8k_cot, got "minerva_math"/],
    [{ shots: -1 }, /eval\.shots must be an integer from 0 to 64/],
    [{ shots: 1.5 }, /eval\.shots must be an integer/],
    [{ task: 'gsm8k_cot', shots: 9 }, /eval\.shots must be an integer from 0 to 8 \(gsm8k_cot has 8 fixed exemplars\)/],
    [{ shotSeed: 'a' }, /eval\.shotSeed must be an integer/],
    [{ shots: 5, train: '' }, /eval\.train must be the path of the GSM8k train file/],
    [{ shot: 5 }, /unknown key eval\.shot\b/],
  ];
  for (const [ev, re] of bad) assert.throws(() => resolveConfig({ world: W, eval: ev }, 'my.yml'), (e: Error) => re.test(e.message) && e.message.startsWith('my.yml: '), JSON.stringify(ev));
  assert.throws(() => loadShotSpec(srv, '/nonexistent-root'), /eval\.train \(the shot pool of eval\.shots 5; set eval\.train, or eval\.shots: 0\): cannot read GSM8k file \/nonexistent-root\/data\/train\.jsonl/);
});

test('the loop sends byte-identical requests to `selfdev eval --shots 5` with the same seed; the protocol is in the store and the report', async () => {
  const tmp = makeTempDir('selfdev-protocol-');
  try {
    const w = await makeMicroWorld(join(tmp.path, 'world'), { nExperts: 2, nOod: 0, nDev: 4, nTest: 2, nSelect: 2 });
    // the shot pool: train.jsonl beside dev.jsonl (the default of both the loop and selfdev eval)
    const train = join(dirname(w.dev), 'train.jsonl');
    const cfgOf = (command: string) => ({
      name: 'protocol', seed: 5, iterations: 1, samplesPerIteration: 2, tensorFilter: 'all', workers: 1, topKTest: 1, selectTopK: 1,
      eval: { devSubset: 2, shotSeed: 7, server: { command, model: 'merged', readyTimeoutSec: 60 } },
      baselines: { lambdas: [1] },
      world: { ...w, algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
    });
    // no pool yet: `selfdev run --check` refuses before anything is created
    await assert.rejects(checkRunPaths(resolveConfig(cfgOf('x')), ROOT, 'c.yml'), (e: Error) => e.message.startsWith(`c.yml: eval.train: file ${JSON.stringify(train)} not found`) && /the shot pool of eval\.shots 5 \(set eval\.train, or eval\.shots: 0\)/.test(e.message));
    writeFileSync(train, Array.from({ length: 12 }, (_, i) => JSON.stringify({ question: `Train question ${i}?`, answer: `Step ${i}.\n#### ${i}` })).join('\n') + '\n');
    const loopLog = join(tmp.path, 'loop-requests.jsonl');
    const command = `exec node --import tsx ${JSON.stringify(join(ROOT, 'src/eval/canned-server.ts'))} --port "$PORT" --model merged --fallback ' #### 1' --log ${JSON.stringify(loopLog)}`;
    const cfg = cfgOf(command);
    await checkRunPaths(resolveConfig(cfg), ROOT, 'c.yml');
    const runDir = join(tmp.path, 'run');
    const r = await runLoop(cfg, runDir, { root: ROOT });
    assert.ok(existsSync(loopLog), 'the loop scored through the server');

    const cliLog = join(tmp.path, 'cli-requests.jsonl');
    const srv = await startCannedServer({ model: 'merged', table: {}, fallback: ' #### 1', log: cliLog });
    try {
      const r = await captureConsole(() => main(['eval', '--endpoint', srv.url, '--model-name', 'merged', '--bench', `gsm8k:${w.dev}`, '--split', 'all', '--shots', '5', '--seed', '7', '--json']));
      assert.equal(r.code, 0, r.err);
    } finally {
      await srv.close();
    }
    const cli = readFileSync(cliLog, 'utf8').trim().split('\n');
    assert.equal(cli.length, 4, 'one request per dev problem');
    const dev = readFileSync(w.dev, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { question: string });
    const query = (q: string) => `\n\nQuestion: ${q}\nAnswer:`;
    const loopLines = readFileSync(loopLog, 'utf8').trim().split('\n');
    let compared = 0;
    dev.forEach((d, i) => {
      const mine = loopLines.filter((l) => (JSON.parse(l) as { prompt: string }).prompt.endsWith(query(d.question)));
      if (i < 2) assert.ok(mine.length >= 1, `the loop scored dev problem ${i} (subset)`);
      for (const l of mine) {
        assert.equal(l, cli[i], `dev problem ${i}: the loop's request bytes = selfdev eval's`);
        compared++;
      }
    });
    assert.ok(compared >= 2, `${compared} loop requests compared`);
    const body = JSON.parse(cli[0]) as { prompt: string; max_tokens: number; stop: string[]; temperature: number };
    assert.equal(body.prompt.split('\n\nQuestion: ').length, 6, '5 shots + the question');
    assert.deepEqual([body.max_tokens, body.temperature, body.stop], [256, 0, [...TASKS.gsm8k.stops]]);

    const store = RunStore.open(runDir, { readonly: true });
    try {
      assert.deepEqual(store.run().evalProtocol, {
        task: 'gsm8k', shots: 5, sampler: 'lm-eval', shotSeed: 7, train, trainSha256: createHash('sha256').update(readFileSync(train)).digest('hex'),
        maxTokens: 256, calculator: false, stop: ['Question:', '</s>', '<|im_end|>'], rankBy: 'strict', backend: 'server',
      });
      const ev = store.evalConfig(store.run().evalKey) as Record<string, unknown>;
      assert.deepEqual([ev.task, ev.shots, ev.shotSeed, ev.train, ev.maxTokens, ev.calculator], ['gsm8k', 5, 7, train, 256, false], 'the eval key covers the protocol');
    } finally {
      store.close();
    }
    assert.match(readFileSync(r.reportPath, 'utf8'), /gsm8k, 5-shot \(lm-eval sampler, seed 7, from [^)]*train\.jsonl\), ≤ 256 new tokens, calculator off, ranked by strict-match, through eval\.server/);
  } finally {
    tmp.cleanup();
  }
});
