import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../io/testing.ts';
import { resolveConfig } from '../loop/config.ts';
import { makeMicroWorld } from '../world/testing.ts';
import { FingerprintCache, MalformedJob, evalSpecOf, fingerprintMismatch, jobIdOf, makeMessage, parseJobMessage, type JobMessage } from './message.ts';
import { redactUrl, urlWarning } from './queue.ts';

const tmp = makeTempDir('selfdev-message-');
process.on('exit', () => tmp.cleanup());
const worldP = makeMicroWorld(join(tmp.path, 'root', 'world'), { nExperts: 2, nOod: 1, nDev: 2, nTest: 2 });
const root = join(tmp.path, 'root');

async function setup() {
  const w = await worldP;
  const cfg = resolveConfig({ world: w, tensorFilter: 'all', eval: { devSubset: 2, maxTokens: 8 } });
  return { w, cfg, spec: evalSpecOf(cfg, root) };
}

test('distributed config: defaults filled in; unknown keys, bad URLs and out-of-range values refused with the key named', async () => {
  const { w } = await setup();
  const ok = resolveConfig({ world: w, distributed: { url: 'redis://127.0.0.1:6379/0' } });
  assert.deepEqual(ok.distributed, { url: 'redis://127.0.0.1:6379/0', maxInFlight: 16, lockDurationMs: 30_000, attempts: 2 });
  assert.equal(resolveConfig({ world: w }).distributed, undefined);
  const bad: [unknown, RegExp][] = [
    [{ url: 'redis://127.0.0.1:6379/0', lockDuration: 5 }, /unknown key distributed\.lockDuration \(known: url, maxInFlight, lockDurationMs, attempts\)/],
    [{ url: 'http://127.0.0.1:6379/0' }, /distributed\.url must start with redis:\/\/ or rediss:\/\//],
    [{ url: 'redis://127.0.0.1/0' }, /distributed\.url needs an explicit port/],
    [{ url: 'redis://127.0.0.1:6379' }, /distributed\.url needs a database number/],
    [{ url: 'redis://127.0.0.1:6379/0?x=1' }, /must not have a query/],
    [{}, /distributed\.url must be a redis:\/\/HOST:PORT\/DB URL, got undefined/],
    [{ url: 'redis://127.0.0.1:6379/0', maxInFlight: 0 }, /distributed\.maxInFlight must be an integer from 1 to 1024, got 0/],
    [{ url: 'redis://127.0.0.1:6379/0', lockDurationMs: 10 }, /distributed\.lockDurationMs must be an integer from 1000/],
    [{ url: 'redis://127.0.0.1:6379/0', attempts: 1.5 }, /distributed\.attempts must be an integer from 1 to 10, got 1\.5/],
    ['redis://127.0.0.1:6379/0', /distributed must be a mapping/],
  ];
  for (const [d, re] of bad) assert.throws(() => resolveConfig({ world: w, distributed: d }), re, JSON.stringify(d));
  // a password never appears in a message
  assert.throws(() => resolveConfig({ world: w, distributed: { url: 'redis://:s3cret@10.0.0.5:6379' } }), (e: Error) => /needs a database number/.test(e.message) && !e.message.includes('s3cret') && e.message.includes('redis://:***@10.0.0.5:6379'));
  assert.equal(resolveConfig({ world: w, distributed: { url: 'redis://:s3cret@10.0.0.5:6379/2' } }).distributed!.url, 'redis://:s3cret@10.0.0.5:6379/2');
  assert.equal(redactUrl('redis://:s3cret@10.0.0.5:6379/2'), 'redis://:***@10.0.0.5:6379/2');
});

test('a remote queue without a password gets a warning; loopback or a password does not', () => {
  assert.match(urlWarning('redis://10.0.0.5:6379/0')!, /not on loopback and has no password/);
  assert.equal(urlWarning('redis://127.0.0.1:6379/0'), null);
  assert.equal(urlWarning('redis://localhost:6379/3'), null);
  assert.equal(urlWarning('redis://:secret@10.0.0.5:6379/0'), null);
});

test('job ids: the same evaluation always gets the same id; any change of program, seed, set, expert set, settings or file gives another; BullMQ-safe', async () => {
  const { cfg, spec } = await setup();
  const job = { code: 'function merge(tv, ctx) { return tv[0]; }', seed: 7, set: 'subset' as const };
  const id = jobIdOf(makeMessage(spec, job, root));
  assert.equal(jobIdOf(makeMessage(evalSpecOf(resolveConfig({ ...cfg }), root), { ...job }, root)), id, 'deterministic');
  assert.equal(jobIdOf(makeMessage(spec, { ...job, experts: 'in-domain' }, root)), id, 'in-domain is the default expert set');
  assert.match(id, /^ev[0-9a-f]{40}$/);
  const others = [
    makeMessage(spec, { ...job, code: job.code + ' ' }, root),
    makeMessage(spec, { ...job, seed: 8 }, root),
    makeMessage(spec, { ...job, set: 'dev' }, root),
    makeMessage(spec, { ...job, experts: 'ood' }, root),
    makeMessage(evalSpecOf(resolveConfig({ ...cfg, eval: { ...cfg.eval, maxTokens: 9 } }), root), job, root),
    makeMessage(spec, { baseline: 'seed', set: 'subset' }, root),
    makeMessage(spec, { baseline: { lambda: 0.5 }, set: 'subset' }, root),
    // the runs of an experiment: the same job in two arms, or in two repeats, never shares an id
    makeMessage(spec, job, root, undefined, 'dpo/r0'),
    makeMessage(spec, job, root, undefined, 'random/r0'),
    makeMessage(spec, job, root, undefined, 'dpo/r1'),
  ].map(jobIdOf);
  assert.equal(new Set([id, ...others]).size, 11, 'all ids differ');
  assert.equal(jobIdOf(makeMessage(spec, job, root, undefined, 'dpo/r0')), others[7], 'a namespaced id is deterministic too');
  // a changed expert file changes the id of the jobs that read it
  const before = jobIdOf(makeMessage(spec, job, root, new FingerprintCache()));
  const e0 = join(root, spec.world.experts[0]!, 'model.safetensors');
  const saved = readFileSync(e0);
  try {
    copyFileSync(join(root, spec.world.experts[1]!, 'model.safetensors'), e0);
    assert.notEqual(jobIdOf(makeMessage(spec, job, root, new FingerprintCache())), before);
  } finally {
    writeFileSync(e0, saved);
  }
  assert.equal(jobIdOf(makeMessage(spec, job, root, new FingerprintCache())), before);
});

test('parseJobMessage accepts a real message and refuses malformed ones with the reason', async () => {
  const { spec } = await setup();
  const m = makeMessage(spec, { code: 'function merge(tv, ctx) { return tv[0]; }', seed: 7, set: 'dev' }, root);
  const id = jobIdOf(m);
  assert.deepEqual(parseJobMessage(JSON.parse(JSON.stringify(m)), id), m);
  const edit = (f: (x: any) => void) => {
    const c = JSON.parse(JSON.stringify(m)) as any;
    f(c);
    return c;
  };
  const cases: [unknown, RegExp][] = [
    [null, /not a JSON object \(null\)/],
    ['text', /not a JSON object \(string\)/],
    [edit((c) => (c.v = 2)), /message version 2, this worker reads version 1/],
    [edit((c) => (c.extra = 1)), /the message has an unknown key "extra"/],
    [edit((c) => delete c.spec.world), /spec must be an object with world and eval/],
    [edit((c) => (c.spec.world.experts = 'x')), /spec\.world\.experts must be a list of paths/],
    [edit((c) => (c.spec.world.experts[0] = '../../etc')), /leaves the worker's --root/],
    [edit((c) => (c.job.set = 'train')), /job\.set must be one of subset, dev, select, test, got "train"/],
    [edit((c) => (c.job.experts = 'all')), /job\.experts must be in-domain or ood/],
    [edit((c) => (c.job.seed = -1)), /job\.seed must be an integer from 0 to 2\^32-1, got -1/],
    [edit((c) => (c.job.code = 5)), /job\.code must be the program text/],
    [edit((c) => (c.job.eval = 'x')), /job has an unknown key "eval"/],
    [edit((c) => delete c.fingerprints[c.spec.world.seedModel]), /fingerprints has no entry for/],
    [edit((c) => ((c.job as any).baseline = 'oracle')), /job has an unknown key "code"|job\.baseline must be/],
  ];
  for (const [data, re] of cases) assert.throws(() => parseJobMessage(data, undefined), (e: Error) => e instanceof MalformedJob && re.test(e.message), `${re}`);
  assert.throws(() => parseJobMessage(edit((c) => (c.job.seed = 8)), id), /the job id ev[0-9a-f]+ does not match its content/);
  // a namespaced message: accepted with its own id; the namespace cannot be moved to another run's id
  const n = makeMessage(spec, { code: 'function merge(tv, ctx) { return tv[0]; }', seed: 7, set: 'dev' }, root, undefined, 'random/r1');
  assert.deepEqual(parseJobMessage(JSON.parse(JSON.stringify(n)), jobIdOf(n)), n);
  assert.throws(() => parseJobMessage(JSON.parse(JSON.stringify(n)), id), /does not match its content/);
  assert.throws(() => parseJobMessage({ ...n, ns: 5 }, undefined), /ns must be a non-empty string/);
  assert.throws(() => parseJobMessage({ ...n, ns: '' }, undefined), /ns must be a non-empty string/);
  const base = makeMessage(spec, { baseline: { lambda: 0.5 }, set: 'test' }, root);
  assert.throws(() => parseJobMessage({ ...base, job: { ...base.job, baseline: { lambda: 'x' } } }, undefined), /job\.baseline must be "seed" or \{ lambda: NUMBER \}/);
});

test('fingerprints: same files match; another root with a different expert, a missing file or a changed problem set do not', async () => {
  const { spec } = await setup();
  const m: JobMessage = makeMessage(spec, { code: 'function merge(tv, ctx) { return tv[0]; }', seed: 1, set: 'test' }, root);
  assert.equal(fingerprintMismatch(m, root, new FingerprintCache()), null);
  const other = join(tmp.path, 'other');
  cpSync(root, other, { recursive: true });
  assert.equal(fingerprintMismatch(m, other, new FingerprintCache()), null, 'an identical copy under another root matches');
  copyFileSync(join(other, spec.world.experts[0]!, 'model.safetensors'), join(other, spec.world.experts[1]!, 'model.safetensors'));
  assert.match(fingerprintMismatch(m, other, new FingerprintCache())!, new RegExp(`${spec.world.experts[1]} resolves to .* under --root ${other}, whose model files differ from the controller's`));
  const third = join(tmp.path, 'third');
  cpSync(root, third, { recursive: true });
  writeFileSync(join(third, spec.world.test), readFileSync(join(third, spec.world.test), 'utf8') + '\n{"question":"q","answer":"#### 1"}\n');
  assert.match(fingerprintMismatch(m, third, new FingerprintCache())!, /whose content differs from the controller's/);
  assert.match(fingerprintMismatch(m, join(tmp.path, 'nowhere'), new FingerprintCache())!, /cannot read the model folder \(ENOENT\)/);
});

test('the shot pool (eval.train) travels as a root-relative path and is fingerprinted: a worker with another pool refuses the job', async () => {
  const { w } = await setup();
  const train = join(root, 'world', 'bench', 'train.jsonl');
  writeFileSync(train, '{"question": "q?", "answer": "a\\n#### 1"}\n');
  const cfg = resolveConfig({ world: w, tensorFilter: 'all', eval: { devSubset: 2, maxTokens: 8, shots: 1 } });
  assert.equal(cfg.eval.train, train, 'default: train.jsonl beside world.dev');
  const spec = evalSpecOf(cfg, root);
  assert.equal(spec.eval.train, join('world', 'bench', 'train.jsonl'));
  const m = makeMessage(spec, { code: 'function merge(tv, ctx) { return tv[0]; }', seed: 7, set: 'dev' }, root);
  assert.ok(m.fingerprints[spec.eval.train!], 'fingerprinted');
  assert.deepEqual(parseJobMessage(JSON.parse(JSON.stringify(m)), jobIdOf(m)), m, 'a worker accepts the message');
  assert.equal(fingerprintMismatch(m, root, new FingerprintCache()), null);
  const other = join(tmp.path, 'other-root');
  cpSync(root, other, { recursive: true });
  writeFileSync(join(other, 'world', 'bench', 'train.jsonl'), '{"question": "other?", "answer": "b\\n#### 2"}\n');
  assert.match(fingerprintMismatch(m, other, new FingerprintCache()) ?? '', /^world\/bench\/train\.jsonl resolves to .* whose content differs from the controller's/);
  assert.notEqual(jobIdOf(m), jobIdOf(makeMessage(evalSpecOf(resolveConfig({ world: w, tensorFilter: 'all', eval: { devSubset: 2, maxTokens: 8, shots: 1, shotSeed: 2 } }), root), m.job, root)), 'the shot seed is part of the id');
});
