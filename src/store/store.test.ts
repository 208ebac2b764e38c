import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { RunStore, normalizeCode, programHash, evalKeyOf, DB_FILE } from './store.ts';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.ts';
import { openDatabase } from './sqlite.ts';

const here = dirname(fileURLToPath(import.meta.url));

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'selfdev-store-'));
}

function fresh(): { dir: string; store: RunStore } {
  const dir = tmp();
  const store = RunStore.open(join(dir, 'run'));
  store.createRun({ name: 'test', config: { n: 60, iterations: 3 }, seed: 7, evalConfig: { bench: 'gsm8k', dev: 100 }, selfdevVersion: '0.0.0-test' });
  return { dir, store };
}

// Small seeded generator (independent of the code under test).
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

test('migrations: opening an empty directory creates the schema; reopening is idempotent; newer schema is refused', () => {
  const dir = join(tmp(), 'does', 'not', 'exist');
  const s1 = RunStore.open(dir);
  assert.equal(s1.schemaVersion(), SCHEMA_VERSION);
  assert.ok(existsSync(join(dir, DB_FILE)));
  assert.equal(s1.getRun(), undefined);
  assert.throws(() => s1.run(), /holds no run yet/);
  s1.close();
  const s2 = RunStore.open(dir);
  assert.equal(s2.schemaVersion(), SCHEMA_VERSION);
  assert.deepEqual(Object.values(s2.counts()), new Array(12).fill(0));
  s2.close();
  // journal mode is WAL, synchronous FULL (2) on a fresh connection
  const raw = openDatabase(join(dir, DB_FILE));
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  raw.prepare("INSERT INTO schema_version (version, description, applied_at) VALUES (999, 'future', 'x')").run();
  raw.close();
  assert.throws(() => RunStore.open(dir), /schema version 999, newer than this selfdev understands/);
  assert.throws(() => RunStore.open(join(tmp(), 'nothing'), { readonly: true }), /no run database/);
});

test('migration 2 on a version-1 database: iterations gain sampled_from / merged_checkpoint / merged_program (NULL for old rows)', () => {
  const dir = tmp();
  const raw = openDatabase(join(dir, DB_FILE));
  raw.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)');
  raw.exec(MIGRATIONS[0]!.sql);
  raw.prepare("INSERT INTO schema_version VALUES (1, 'initial schema', 'x')").run();
  raw.prepare("INSERT INTO iterations (arm, t, status, factory_checkpoint, started_at) VALUES ('dpo', 1, 'done', 'factory/iter-1', 'x')").run();
  raw.close();
  const s = RunStore.open(dir);
  try {
    assert.equal(s.schemaVersion(), SCHEMA_VERSION, 'migrations 2 and later applied');
    const it = s.iteration(1)!;
    assert.deepEqual([it.factoryCheckpoint, it.sampledFrom, it.mergedCheckpoint, it.mergedProgram], ['factory/iter-1', null, null, null]);
    const { hash } = s.addSamples([{ iterationId: it.id, code: 'function merge(t) { return t[0]; }' }])[0]!;
    s.updateIteration(it.id, { sampledFrom: 'factory/merged-iter-0', mergedCheckpoint: 'factory/merged-iter-1', mergedProgram: hash });
    s.updateIteration(it.id, { status: 'done' }); // other updates keep them
    const u = s.iteration(1)!;
    assert.deepEqual([u.factoryCheckpoint, u.sampledFrom, u.mergedCheckpoint, u.mergedProgram], ['factory/iter-1', 'factory/merged-iter-0', 'factory/merged-iter-1', hash]);
    assert.throws(() => s.updateIteration(it.id, { mergedProgram: 'f'.repeat(64) }), /FOREIGN KEY/);
  } finally {
    s.close();
  }
});

test('migration 3 on a version-2 database: evaluations gain select_strict / select_flex (NULL for old rows), written and kept like the other scores', () => {
  const dir = tmp();
  const raw = openDatabase(join(dir, DB_FILE));
  raw.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)');
  for (const m of MIGRATIONS.slice(0, 2)) {
    raw.exec(m.sql);
    raw.prepare("INSERT INTO schema_version VALUES (?, ?, 'x')").run(m.version, m.description);
  }
  const key = evalKeyOf({ dev: 1 });
  raw.prepare("INSERT INTO eval_configs VALUES (?, '{\"dev\":1}', 'x')").run(key);
  raw.prepare("INSERT INTO runs (id, name, config_json, seed, eval_key, status, selfdev_version, created_at, updated_at) VALUES (1, 'old', '{}', 0, ?, 'done', '0', 'x', 'x')").run(key);
  raw.prepare("INSERT INTO iterations (arm, t, status, started_at) VALUES ('dpo', 1, 'done', 'x')").run();
  raw.prepare("INSERT INTO programs VALUES ('a', 'function merge(t) { return t[0]; }', 'x')").run();
  raw.prepare("INSERT INTO samples (iteration_id, seq, program_hash, origin, created_at) VALUES (1, 0, 'a', 'factory', 'x')").run();
  raw.prepare("INSERT INTO evaluations (program_hash, eval_key, verdict, dev_strict, test_strict, created_at, updated_at) VALUES ('a', ?, 'ok', 0.5, 0.4, 'x', 'x')").run(key);
  raw.close();
  const s = RunStore.open(dir);
  try {
    assert.equal(s.schemaVersion(), SCHEMA_VERSION);
    const e = s.evaluationFor('a')!;
    assert.deepEqual([e.devStrict, e.testStrict, e.selectStrict, e.selectFlex], [0.5, 0.4, null, null]);
    assert.deepEqual(s.pendingWork({ selectTopK: 5 }).awaitingSelect, [{ hash: 'a', devStrict: 0.5 }]);
    s.recordEvaluation({ hash: 'a', selectStrict: 0.45, selectFlex: 0.47 });
    s.recordEvaluation({ hash: 'a', testFlex: 0.41 }); // other updates keep them
    const u = s.evaluationFor('a')!;
    assert.deepEqual([u.devStrict, u.selectStrict, u.selectFlex, u.testStrict, u.testFlex], [0.5, 0.45, 0.47, 0.4, 0.41]);
    assert.deepEqual(s.leaderboard(1).map((r) => [r.hash, r.selectStrict, r.selectFlex]), [['a', 0.45, 0.47]]);
    assert.deepEqual(s.pendingWork({ selectTopK: 5 }).awaitingSelect, []);
    assert.throws(() => s.recordEvaluation({ hash: 'a', selectStrict: Number.POSITIVE_INFINITY }), /selectStrict must be a finite number/);
  } finally {
    s.close();
  }
});

test('createRun / getRun round trip; a second createRun is refused', () => {
  const { store } = fresh();
  const r = store.run();
  assert.equal(r.name, 'test');
  assert.deepEqual(r.config, { n: 60, iterations: 3 });
  assert.equal(r.seed, 7);
  assert.equal(r.status, 'running');
  assert.equal(r.evalKey, evalKeyOf({ dev: 100, bench: 'gsm8k' }));
  assert.deepEqual(store.evalConfig(r.evalKey), { bench: 'gsm8k', dev: 100 });
  assert.throws(() => store.createRun({ name: 'again', config: {}, seed: 1, evalConfig: {} }), /already holds a run/);
  store.setRunStatus('done');
  assert.equal(store.run().status, 'done');
  assert.ok(store.run().finishedAt);
  store.close();
  // A read-only handle (e.g. for the report while the loop runs) reads but cannot write.
  const ro = RunStore.open(dirname(store.path), { readonly: true });
  assert.equal(ro.run().name, 'test');
  assert.throws(() => ro.startIteration({ t: 1 }), /readonly/i);
  ro.close();
});

test('normalisation and hashing', () => {
  assert.equal(normalizeCode('\r\n\nfunction f() {  \r\n  return 1;\t\r\n}\n\n\n'), 'function f() {\n  return 1;\n}');
  assert.equal(programHash('a\r\nb  \n'), createHash('sha256').update('a\nb').digest('hex'));
  assert.notEqual(programHash('a b'), programHash('a  b'));
  assert.equal(evalKeyOf({ a: 1, b: [1, { d: 2, c: 3 }] }), evalKeyOf({ b: [1, { c: 3, d: 2 }], a: 1 }));
});

test('duplicate programs are stored and evaluated once; pending work reflects it', () => {
  const { store } = fresh();
  const it1 = store.startIteration({ t: 1, temperature: 1.2, nTarget: 3 });
  assert.equal(store.startIteration({ t: 1 }).id, it1.id, 'startIteration resumes the existing row');
  const code = 'function merge(models) {\n  return models[0];\n}';
  const r = store.addSamples([
    { iterationId: it1.id, code },
    { iterationId: it1.id, code: code.replace(/\n/g, '\r\n') + '   \n\n' },
    { iterationId: it1.id, code: 'function merge(m) { return m[1]; }' },
  ]);
  assert.deepEqual(r.map((x) => x.newProgram), [true, false, true]);
  assert.deepEqual(r.map((x) => x.seq), [0, 1, 2]);
  assert.equal(r[0].hash, r[1].hash);
  const it2 = store.startIteration({ t: 2, temperature: 1.0 });
  const again = store.addSample({ iterationId: it2.id, code, origin: 'carry', parentHash: r[2].hash });
  assert.equal(again.newProgram, false);
  assert.equal(store.samples(it2.id)[0].temperature, 1.0, 'temperature defaults to the iteration temperature');

  let pending = store.pendingWork();
  assert.deepEqual(pending.unevaluated.map((p) => p.hash), [r[0].hash, r[2].hash]);
  assert.deepEqual(pending.openIterations.map((i) => i.t), [1, 2]);

  store.recordEvaluation({ hash: r[0].hash, verdict: 'ok', devSubset: 0.5, sandboxMs: 12 });
  store.recordEvaluation({ hash: r[2].hash, verdict: 'syntax', message: 'Unexpected token )' });
  pending = store.pendingWork();
  assert.deepEqual(pending.unevaluated, []);
  assert.deepEqual(pending.awaitingFullDev, [{ hash: r[0].hash, devSubset: 0.5 }]);
  assert.deepEqual(pending.awaitingTest, []);

  // Partial update keeps earlier fields.
  store.recordEvaluation({ hash: r[0].hash, devStrict: 0.61, devFlex: 0.64 });
  const e = store.evaluationFor(r[0].hash)!;
  assert.equal(e.verdict, 'ok');
  assert.equal(e.devSubset, 0.5);
  assert.equal(e.sandboxMs, 12);
  assert.equal(e.devStrict, 0.61);
  pending = store.pendingWork();
  assert.deepEqual(pending.awaitingFullDev, []);
  assert.deepEqual(pending.awaitingTest, [{ hash: r[0].hash, devStrict: 0.61 }]);
  assert.deepEqual(pending.awaitingSelect, [], 'no selection work without selectTopK');
  assert.deepEqual(store.pendingWork({ selectTopK: 3 }).awaitingSelect, [{ hash: r[0].hash, devStrict: 0.61 }]);
  store.recordEvaluation({ hash: r[0].hash, testStrict: 0.7, testFlex: 0.72 });
  assert.deepEqual(store.pendingWork().awaitingTest, []);
  store.recordEvaluation({ hash: r[0].hash, selectStrict: 0.66, selectFlex: 0.68 });
  assert.deepEqual(store.pendingWork({ selectTopK: 3 }).awaitingSelect, []);
  assert.deepEqual([store.evaluationFor(r[0].hash)!.selectStrict, store.evaluationFor(r[0].hash)!.testStrict, store.evaluationFor(r[0].hash)!.devStrict], [0.66, 0.7, 0.61]);

  const counts = store.counts();
  assert.equal(counts.programs, 2);
  assert.equal(counts.samples, 4);
  assert.equal(counts.evaluations, 2);

  const sum = store.iterationSummary();
  assert.equal(sum[0].nSampled, 3);
  assert.equal(sum[0].nDistinct, 2);
  assert.equal(sum[0].nValid, 2, 'both samples of the valid program count');
  assert.deepEqual(sum[0].verdicts, { ok: 2, syntax: 1 });
  assert.equal(sum[0].passRate, 2 / 3);
  assert.deepEqual(sum[0].screenScores, [0.5], 'distinct programs only in the distribution');
  assert.equal(sum[1].nSampled, 1);

  // A second evaluation config evaluates the same program separately.
  const key2 = store.addEvalConfig({ bench: 'gsm8k', dev: 200 });
  assert.equal(store.evaluationFor(r[0].hash, key2), undefined);
  assert.equal(store.pendingWork({ evalKey: key2 }).unevaluated.length, 2);

  const p = store.programByHash(r[0].hash)!;
  assert.equal(p.code, code);
  assert.deepEqual([p.firstSample!.t, p.firstSample!.arm, p.firstSample!.origin, p.firstSample!.temperature], [1, 'dpo', 'factory', 1.2]);
  store.updateIteration(it1.id, { status: 'done', factoryCheckpoint: 'ckpt/1', timings: { sample: 100 } });
  store.updateIteration(it1.id, { timings: { eval: 50 } });
  const u = store.iteration(1)!;
  assert.deepEqual(u.timings, { sample: 100, eval: 50 });
  assert.equal(u.factoryCheckpoint, 'ckpt/1');
  assert.ok(u.finishedAt);
  assert.deepEqual(store.pendingWork().openIterations.map((i) => i.t), [2]);
  store.close();
});

test('bad input is refused with specific errors', () => {
  const { store } = fresh();
  const it = store.startIteration({ t: 1 });
  assert.throws(() => store.recordEvaluation({ hash: 'f'.repeat(64), verdict: 'ok' }), /program f+ is not in the database/);
  const { hash } = store.addSample({ iterationId: it.id, code: 'x' });
  assert.throws(() => store.recordEvaluation({ hash, verdict: 'ok', devStrict: Number.NaN }), /devStrict must be a finite number/);
  assert.throws(() => store.recordEvaluation({ hash, devStrict: 0.5 }), /must give a verdict/);
  assert.throws(() => store.recordEvaluation({ hash, verdict: 'ok', evalKey: 'nope' }), /unknown eval key nope/);
  assert.throws(() => store.addSample({ iterationId: 999, code: 'y' }), /no iteration with id 999/);
  assert.throws(() => store.addSample({ iterationId: it.id, code: 'y', parentHash: 'abc' }), /parent program abc/);
  assert.throws(() => store.startIteration({ t: 0 }), /t must be an integer >= 1/);
  assert.throws(() => store.addPairs(it.id, 'p', [{ chosenHash: hash, rejectedHash: hash, chosenScore: 1, rejectedScore: 0 }]), /same program/);
  assert.equal(store.counts().pairs, 0, 'a failed transaction leaves nothing behind');
  store.close();
});

test('leaderboard and iterationSummary on a synthetic run match independently computed values', () => {
  const { store } = fresh();
  const rnd = lcg(42);
  const cats = ['syntax', 'runtime', 'timeout', 'bad-shape'];
  type Truth = { hash: string; t: number; verdict: string; sub: number | null; dev: number | null; seq: number };
  const truth: Truth[] = [];
  let globalSeq = 0;
  for (let t = 1; t <= 3; t++) {
    const it = store.startIteration({ t, temperature: 1.2 / (1 + 0.2 * (t - 1)), nTarget: 40 });
    for (let i = 0; i < 40; i++) {
      const code = `function merge(m) { return ${t * 1000 + i}; }`;
      const { hash } = store.addSample({ iterationId: it.id, code });
      const valid = rnd() < 0.6;
      const sub = valid ? Math.round(rnd() * 100) / 100 : null;
      const dev = valid && sub! > 0.5 ? Math.round(rnd() * 1000) / 1000 : null;
      const verdict = valid ? 'ok' : cats[Math.floor(rnd() * cats.length)];
      store.recordEvaluation({ hash, verdict, devSubset: sub, devStrict: dev, devFlex: dev === null ? null : dev + 0.01, message: valid ? null : `${verdict} error` });
      truth.push({ hash, t, verdict, sub, dev, seq: globalSeq++ });
    }
  }
  // Leaderboard: full-dev first by dev desc (ties by flex (equal here) then subset then order), then subset-only by subset desc.
  const valid = truth.filter((x) => x.verdict === 'ok');
  const expected = [...valid].sort((a, b) => {
    if ((a.dev === null) !== (b.dev === null)) return a.dev === null ? 1 : -1;
    if (a.dev !== null && b.dev !== null && a.dev !== b.dev) return b.dev - a.dev;
    if (a.sub !== b.sub) return b.sub! - a.sub!;
    return a.seq - b.seq;
  });
  const lb = store.leaderboard(15);
  assert.equal(lb.length, 15);
  assert.deepEqual(lb.map((r) => r.hash), expected.slice(0, 15).map((x) => x.hash));
  assert.deepEqual(lb.map((r) => r.rank), Array.from({ length: 15 }, (_, i) => i + 1));
  assert.equal(lb[0].t, expected[0].t);
  assert.equal(store.leaderboard(1000).length, valid.length);
  assert.deepEqual(store.rankedPrograms().map((r) => r.hash), expected.map((x) => x.hash), 'rankedPrograms: the whole leaderboard');
  assert.deepEqual(store.rankedPrograms().slice(0, 15), lb);
  // awaitingSelect: the top selectTopK with a full-dev score and no select score
  assert.deepEqual(store.pendingWork({ selectTopK: 4 }).awaitingSelect.map((x) => x.hash), expected.slice(0, 4).filter((x) => x.dev !== null).map((x) => x.hash));
  assert.deepEqual(store.leaderboard(5, { arm: 'random' }), []);
  const it2 = store.iteration(2)!;
  const top2 = store.leaderboard(3, { iterationId: it2.id });
  assert.deepEqual(top2.map((r) => r.hash), expected.filter((x) => x.t === 2).slice(0, 3).map((x) => x.hash));
  const progs = store.iterationPrograms(it2.id);
  assert.deepEqual(progs.map((p) => p.hash), truth.filter((x) => x.t === 2).map((x) => x.hash));
  assert.deepEqual(progs.map((p) => [p.verdict, p.devSubset, p.devStrict]), truth.filter((x) => x.t === 2).map((x) => [x.verdict, x.sub, x.dev]));

  const sum = store.iterationSummary();
  assert.equal(sum.length, 3);
  for (const s of sum) {
    const rows = truth.filter((x) => x.t === s.t);
    const v = rows.filter((x) => x.verdict === 'ok');
    const subs = v.map((x) => x.sub!).sort((a, b) => a - b);
    const mid = subs.length >> 1;
    const med = subs.length % 2 ? subs[mid] : (subs[mid - 1] + subs[mid]) / 2;
    assert.equal(s.nSampled, 40);
    assert.equal(s.nValid, v.length);
    assert.equal(s.passRate, v.length / 40);
    assert.equal(s.bestScreen, Math.max(...subs));
    assert.equal(s.medianScreen, med);
    const devs = v.filter((x) => x.dev !== null).map((x) => x.dev!);
    assert.equal(s.bestDevStrict, devs.length ? Math.max(...devs) : null);
    const fails: Record<string, number> = {};
    for (const x of rows) fails[x.verdict] = (fails[x.verdict] ?? 0) + 1;
    assert.deepEqual(s.verdicts, fails);
  }
  const f = store.failures({ limitPerVerdict: 2 });
  for (const c of new Set(f.map((x) => x.verdict))) assert.ok(f.filter((x) => x.verdict === c).length <= 2);
  assert.ok(f.every((x) => x.message === `${x.verdict} error`));
  store.close();
});

test('preference pairs export as TRL JSONL; programs export as files', () => {
  const { dir, store } = fresh();
  const it = store.startIteration({ t: 2 });
  const a = store.addSample({ iterationId: it.id, code: 'function a() {}' }).hash;
  const b = store.addSample({ iterationId: it.id, code: 'function b() {}' }).hash;
  const c = store.addSample({ iterationId: it.id, code: 'function c() {}' }).hash;
  store.recordEvaluation({ hash: a, verdict: 'ok', devStrict: 0.8 });
  const n = store.addPairs(it.id, 'PROMPT', [
    { chosenHash: a, rejectedHash: b, chosenScore: 0.8, rejectedScore: 0.1 },
    { chosenHash: c, rejectedHash: b, chosenScore: 0.7, rejectedScore: 0.1, source: 'carried' },
    { chosenHash: a, rejectedHash: b, chosenScore: 0.8, rejectedScore: 0.1 },
  ]);
  assert.equal(n, 2, 'the duplicate pair is ignored');
  const out = join(dir, 'pairs.jsonl');
  assert.equal(store.exportPairsJsonl(it.id, out, { completion: (code) => '```js\n' + code + '\n```' }), 2);
  const lines = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines[0], {
    prompt: 'PROMPT', chosen: '```js\nfunction a() {}\n```', rejected: '```js\nfunction b() {}\n```',
    chosen_hash: a, rejected_hash: b, chosen_score: 0.8, rejected_score: 0.1, iteration: 2, arm: 'dpo', repeat_index: 0, source: 'current',
  });
  assert.equal(lines[1].source, 'carried');
  const pf = join(dir, 'best.js');
  store.exportProgram(a, pf);
  assert.equal(readFileSync(pf, 'utf8'), 'function a() {}\n');
  store.exportProgram(a, pf, { header: true });
  const txt = readFileSync(pf, 'utf8');
  assert.match(txt, new RegExp(`^// selfdev program ${a}\n`));
  assert.match(txt, /dev strict 0\.8000/);
  assert.ok(txt.endsWith('function a() {}\n'));
  store.close();
});

test('DPO steps, baselines, transfer and repeats round trip', () => {
  const { store } = fresh();
  const it = store.startIteration({ t: 1 });
  const h = store.addSample({ iterationId: it.id, code: 'z' }).hash;
  store.addDpoSteps(it.id, [{ step: 0, loss: 0.69, margin: 0, accuracy: 0.5 }, { step: 1, loss: 0.6, margin: 0.2, accuracy: 0.75, rewardsChosen: 0.1, rewardsRejected: -0.1 }]);
  const steps = store.dpoSteps(it.id);
  assert.deepEqual(steps.map((s) => [s.step, s.loss, s.margin]), [[0, 0.69, 0], [1, 0.6, 0.2]]);
  assert.equal(steps[0].rewardsChosen, null);
  store.addBaseline({ name: 'Task Arithmetic', method: 'task_arithmetic', params: { weight: 0.4 }, devStrict: 0.6 });
  store.addBaseline({ name: 'Task Arithmetic', method: 'task_arithmetic', params: { weight: 0.4 }, devStrict: 0.62, selected: true, testStrict: 0.58 });
  store.addBaseline({ name: 'Task Arithmetic', method: 'task_arithmetic', params: { weight: 0.2 }, devStrict: 0.5 });
  store.addBaseline({ name: 'Task Arithmetic', method: 'task_arithmetic', params: { weight: 0.4 }, expertSet: 'ood', selected: true, testStrict: 0.4 });
  assert.equal(store.baselines().length, 3);
  const sel = store.baselines({ expertSet: 'in-domain', selectedOnly: true });
  assert.equal(sel.length, 1);
  assert.deepEqual([sel[0].params, sel[0].devStrict, sel[0].testStrict], [{ weight: 0.4 }, 0.62, 0.58]);
  store.addTransfer({ hash: h, sourceRank: 1, expertSet: 'ood-a', testStrict: 0.45 });
  assert.deepEqual(store.transfers().map((x) => [x.hash, x.expertSet, x.testStrict]), [[h, 'ood-a', 0.45]]);
  store.recordRepeat({ arm: 'random', repeatIndex: 0, seed: 11, testStrict: 0.5 });
  store.recordRepeat({ arm: 'dpo', repeatIndex: 1, seed: 12, bestHash: h, testStrict: 0.6 });
  store.recordRepeat({ arm: 'dpo', repeatIndex: 0, seed: 13, bestHash: h, testStrict: 0.55 });
  assert.deepEqual(store.repeats().map((r) => [r.arm, r.repeatIndex]), [['dpo', 0], ['dpo', 1], ['random', 0]]);
  assert.throws(() => store.recordRepeat({ arm: 'dpo', repeatIndex: 2, seed: 1, bestHash: 'nope' }), /best program nope/);
  store.close();
});

test('durability: rows reported committed survive SIGKILL; the database is not corrupt', async () => {
  const dir = join(tmp(), 'run');
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'durability-child.ts'), dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const committed: string[] = [];
  let buf = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const target = 150;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child produced only ${committed.length} commits in 15 s; stderr: ${stderr}`)), 15_000);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('committed ')) committed.push(line.slice('committed '.length));
      }
      if (committed.length >= target && child.exitCode === null && !child.killed) {
        child.kill('SIGKILL');
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code, sig) => {
      if (sig !== 'SIGKILL') {
        clearTimeout(timer);
        reject(new Error(`child exited early (${code}); stderr: ${stderr}`));
      }
    });
  });
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  const store = RunStore.open(dir);
  assert.equal(store.integrityCheck(), 'ok');
  for (const h of committed) {
    assert.ok(store.programByHash(h), `program ${h} reported committed is missing`);
    assert.ok(store.evaluationFor(h), `evaluation of ${h} reported committed is missing`);
  }
  const counts = store.counts();
  assert.ok(counts.programs >= committed.length);
  assert.equal(counts.programs, counts.evaluations, 'sample and evaluation were committed together');
  // The store is still writable after the crash.
  const it = store.startIteration({ t: 2 });
  store.addSample({ iterationId: it.id, code: 'after crash' });
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('migration 4: evaluations record the queue worker that scored a program; the first one recorded is kept', () => {
  const dir = tmp();
  const s = RunStore.open(dir);
  try {
    s.createRun({ name: 'w', config: {}, seed: 0, evalConfig: { dev: 1 } });
    const it = s.startIteration({ t: 1, arm: 'dpo', temperature: 1, nTarget: 2 });
    const [a, b] = s.addSamples([{ iterationId: it.id, code: 'function merge(t) { return t[0]; }' }, { iterationId: it.id, code: 'function merge(t) { return t[1]; }' }]);
    assert.equal(s.recordEvaluation({ hash: a!.hash, verdict: 'ok', devSubset: 0.5, scoredBy: 'node1:11' }).scoredBy, 'node1:11');
    assert.equal(s.recordEvaluation({ hash: a!.hash, devStrict: 0.4, scoredBy: 'node2:22' }).scoredBy, 'node1:11', 'a later delivery does not change it');
    assert.equal(s.recordEvaluation({ hash: b!.hash, verdict: 'ok', devSubset: 0.1 }).scoredBy, null, 'local evaluation');
    assert.equal(s.evaluationFor(a!.hash)!.devStrict, 0.4);
  } finally {
    s.close();
  }
});

test('migration 5: the run records its scoring protocol; a run from before it reads back null', () => {
  const dir = tmp();
  const raw = openDatabase(join(dir, DB_FILE));
  raw.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)');
  for (const m of MIGRATIONS.filter((x) => x.version <= 4)) {
    raw.exec(m.sql);
    raw.prepare("INSERT INTO schema_version VALUES (?, 'x', 'x')").run(m.version);
  }
  raw.prepare("INSERT INTO eval_configs (eval_key, config_json, created_at) VALUES ('k', '{}', 'x')").run();
  raw.prepare("INSERT INTO runs (id, name, config_json, seed, eval_key, status, selfdev_version, created_at, updated_at) VALUES (1, 'old', '{}', 0, 'k', 'done', '0', 'x', 'x')").run();
  raw.close();
  const ro = RunStore.open(dir, { readonly: true }); // a report or an experiment summary of an old run: no migration
  try {
    assert.equal(ro.run().name, 'old');
    assert.equal(ro.run().evalProtocol, null, 'an old store opened read-only reads back null');
  } finally {
    ro.close();
  }
  const s = RunStore.open(dir);
  try {
    assert.equal(s.schemaVersion(), SCHEMA_VERSION);
    assert.equal(s.run().evalProtocol, null, 'not recorded before migration 5');
  } finally {
    s.close();
  }
  const s2 = RunStore.open(tmp());
  try {
    const protocol = { task: 'gsm8k', shots: 5, sampler: 'lm-eval', shotSeed: 1234, maxTokens: 256, calculator: false, rankBy: 'strict' };
    s2.createRun({ name: 'new', config: {}, seed: 0, evalConfig: { dev: 1 }, evalProtocol: protocol });
    assert.deepEqual(s2.run().evalProtocol, protocol);
  } finally {
    s2.close();
  }
});
