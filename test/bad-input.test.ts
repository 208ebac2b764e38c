/**
 * Issue 20: bad input never crashes, never writes a broken model, never destroys an input. One test
 * per cause found by fuzzing (most serious first); each runs the CLI as a child with a heap cap and
 * a timeout, checks the exit and the one-line message, that nothing was left behind, and that the
 * inputs are byte-identical afterwards. The property-based suite is test/fuzz/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../src/io/testing.ts';
import { Checkpoint } from '../src/io/checkpoint.ts';
import { REPO, assertCleanFailure, assertSuccess, copyModel, hashTree, leftovers, makeEngineModel, makeMergeModel, makeRunWorld, readJson, runCli, writeJson } from './fuzz/harness.ts';

const tmp = makeTempDir('selfdev-bad-input-');
test.after(() => tmp.cleanup());
let k = 0;
const fresh = (name: string) => join(tmp.path, `${name}-${k++}`);

// merge inputs: a base and two fine-tunes (2 layers, vocab 259, bf16, the engine's tokenizer)
const base = join(tmp.path, 'base');
const m1 = join(tmp.path, 'm1');
const m2 = join(tmp.path, 'm2');
makeMergeModel(base, 1);
makeMergeModel(m1, 2, base);
makeMergeModel(m2, 3, base);
// the engine's model (eval, export-gguf): 3 layers, vocab 259, byte-level tokenizer
const engineModel = makeEngineModel(join(tmp.path, 'engine'), 1);

function mergeConfig(cfg: Record<string, unknown>): string {
  const p = fresh('merge') + '.yml';
  writeJson(p, cfg);
  return p;
}
const ta = (weight: unknown, extra: Record<string, unknown> = {}) => ({ merge_method: 'task_arithmetic', base_model: base, models: [{ model: m1, parameters: { weight } }, { model: m2, parameters: { weight: 0.5 } }], ...extra });

/** A copy of the engine model with config.json edited. */
function m0With(edit: (c: Record<string, any>) => void): string {
  const dir = copyModel(engineModel, fresh('m0'));
  const c = readJson(join(dir, 'config.json'));
  edit(c);
  writeJson(join(dir, 'config.json'), c);
  return dir;
}

/** eval and export-gguf both refuse `dir` cleanly (matching `re`), leave no output and do not touch it. */
function bothRefuse(dir: string, re: RegExp, o: { heapMb?: number; timeoutMs?: number } = {}): void {
  const before = hashTree(dir);
  const ev = runCli(['eval', '--model', dir, '--limit', '1', '--max-tokens', '4', '--json'], { heapMb: o.heapMb ?? 256, timeoutMs: o.timeoutMs ?? 30_000 });
  assertCleanFailure(ev, re);
  const gguf = fresh('out') + '.gguf';
  const ex = runCli(['export-gguf', dir, gguf], { heapMb: o.heapMb ?? 256, timeoutMs: o.timeoutMs ?? 30_000 });
  assertCleanFailure(ex, re);
  assert.deepEqual(leftovers(gguf), []);
  assert.equal(hashTree(dir), before, 'the input folder is unchanged');
}

test('1. a config size is bounded by the tensors before anything is allocated (num_hidden_layers 1e9: no OOM, no hang)', () => {
  const dir = m0With((c) => (c.num_hidden_layers = 1_000_000_000));
  bothRefuse(dir, /num_hidden_layers.*1000000000.*3 layers/, { heapMb: 128, timeoutMs: 20_000 });
  const inspect = runCli(['inspect', dir], { heapMb: 128, timeoutMs: 20_000 });
  assertSuccess(inspect); // inspect reports the disagreement as a warning
  assert.match(inspect.stdout, /warning: config\.json has num_hidden_layers 1000000000/);
  const big = m0With((c) => (c.vocab_size = 4_000_000_000));
  bothRefuse(big, /vocab_size/, { heapMb: 128, timeoutMs: 20_000 });
});

test('2. a merge whose result is not finite stops naming the tensor and the count; --allow-non-finite lets it through', () => {
  for (const [method, weight] of [['linear', 1e300], ['task_arithmetic', 1e300], ['task_arithmetic', 1e39]] as const) {
    const out = fresh('out');
    const cfg = method === 'linear' ? { merge_method: 'linear', models: [{ model: m1, parameters: { weight } }, { model: m2, parameters: { weight: 1 } }] } : ta(weight);
    assertCleanFailure(runCli(['merge', mergeConfig(cfg), out]), /weight.*(1e\+300|1e\+39).*float32/);
    assert.deepEqual(leftovers(out), []);
  }
  // finite float32 weights whose sum overflows: 3e38·w1 + 3e38·w2 ≈ 6e38 > float32 max on the norm weights (≈ 1)
  const overflow = mergeConfig({ merge_method: 'linear', parameters: { normalize: false }, models: [{ model: m1, parameters: { weight: 3e38 } }, { model: m2, parameters: { weight: 3e38 } }] });
  const out = fresh('out');
  assertCleanFailure(runCli(['merge', overflow, out]), /tensor '?model\.[\w.]+'?.*\b\d[\d,]* non-finite values?/);
  assert.deepEqual(leftovers(out), []);
  const allowed = fresh('out');
  assertSuccess(runCli(['merge', overflow, allowed, '--allow-non-finite']));
  const c = Checkpoint.open(allowed);
  try {
    assert.ok(c.readF32('model.norm.weight').some((v) => !Number.isFinite(v)), 'the non-finite values were written as asked');
  } finally {
    c.close();
  }
  const viaConfig = fresh('out');
  assertSuccess(runCli(['merge', mergeConfig({ ...readJson(overflow), allow_non_finite: true }), viaConfig]));
});

test('3. merge refuses a base model whose config.json or tokenizer.json is missing, garbage or not a file', () => {
  const cases: Array<[string, (dir: string) => void, RegExp]> = [
    ['no config.json', (d) => rmSync(join(d, 'config.json')), /config\.json.*(missing|not found)/],
    ['garbage config.json', (d) => writeFileSync(join(d, 'config.json'), '{"hidden_size": 16,'), /config\.json.*not valid JSON/],
    ['config.json is a folder', (d) => { rmSync(join(d, 'config.json')); mkdirSync(join(d, 'config.json')); }, /config\.json.*not a regular file/],
    ['no tokenizer', (d) => rmSync(join(d, 'tokenizer.json')), /no tokenizer \(tokenizer\.json or tokenizer\.model\)/],
    ['garbage tokenizer.json', (d) => writeFileSync(join(d, 'tokenizer.json'), '{"from": "nowhere"}'), /tokenizer\.json/],
    ['tokenizer.json is a folder', (d) => { rmSync(join(d, 'tokenizer.json')); mkdirSync(join(d, 'tokenizer.json')); }, /tokenizer\.json.*not a regular file/],
  ];
  for (const [what, edit, re] of cases) {
    const b = fresh('base');
    makeMergeModel(b, 1);
    edit(b);
    const before = hashTree(b);
    const out = fresh('out');
    assertCleanFailure(runCli(['merge', mergeConfig({ ...ta(0.5), base_model: b, models: [{ model: m1, parameters: { weight: 0.5 } }] }), out]), re);
    assert.deepEqual(leftovers(out), [], what);
    assert.equal(hashTree(b), before, what);
  }
});

test('4. --overwrite never replaces, fills or contains an input folder', () => {
  const b = fresh('base');
  makeMergeModel(b, 1);
  const inner = join(b, 'sub');
  for (const [out, re] of [[b, /is an input/], [inner, /inside an input/], [tmp.path, /contains an input/]] as const) {
    const before = hashTree(b);
    const r = runCli(['merge', mergeConfig({ ...ta(0.5), base_model: b }), out, '--overwrite']);
    assertCleanFailure(r, re);
    assert.equal(hashTree(b), before);
    assert.ok(existsSync(join(b, 'model.safetensors')));
  }
  // a symlink to an input is the input
  const link = fresh('link');
  execFileSync('ln', ['-s', b, link]);
  assertCleanFailure(runCli(['merge', mergeConfig({ ...ta(0.5), base_model: b }), link, '--overwrite']), /is an input/);
  // export-gguf onto a file it reads
  const m0 = copyModel(engineModel, fresh('m0'));
  const before = hashTree(m0);
  assertCleanFailure(runCli(['export-gguf', m0, join(m0, 'model.safetensors')]), /lies inside an input/);
  assertCleanFailure(runCli(['export-gguf', m0, join(m0, 'new.gguf')]), /lies inside an input/);
  assertCleanFailure(runCli(['export-gguf', m0, m0]), /is an input/);
  assert.equal(hashTree(m0), before);
});

test('5. configs that contradict the tensors are refused, the same way by eval and export-gguf', () => {
  bothRefuse(m0With((c) => (c.num_hidden_layers = 2)), /num_hidden_layers.*2.*3 layers/);
  bothRefuse(m0With((c) => (c.tie_word_embeddings = true)), /tie_word_embeddings.*lm_head\.weight/);
  bothRefuse(m0With((c) => (c.bos_token_id = '1')), /bos_token_id/);
  bothRefuse(m0With((c) => (c.eos_token_id = 9999)), /eos_token_id.*9999/);
  bothRefuse(m0With((c) => (c.pad_token_id = -1)), /pad_token_id/);
  bothRefuse(m0With((c) => (c.architectures = 5)), /architectures/);
  bothRefuse(m0With((c) => (c.model_type = 'gpt2')), /model_type/);
  bothRefuse(m0With((c) => (c.model_type = null)), /model_type/);
});

test('6. internal errors never reach the user as the message', () => {
  bothRefuse(m0With((c) => (c.max_position_embeddings = 1e12)), /max_position_embeddings/);
  const tok = copyModel(engineModel, fresh('m0'));
  const j = readJson(join(tok, 'tokenizer.json'));
  j.added_tokens = {};
  writeJson(join(tok, 'tokenizer.json'), j);
  bothRefuse(tok, /added_tokens/);
});

// ------------------------------------------------------------------------------------- run configs

const runWorld = makeRunWorld(join(tmp.path, 'run-world'));
function runConfig(over: Record<string, unknown>, world: Record<string, unknown> = {}): string {
  const p = fresh('run') + '.yml';
  writeJson(p, { name: 'bad-input', iterations: 1, samplesPerIteration: 1, workers: 1, ...over, world: { ...runWorld, ...world } });
  return p;
}
function runRefused(cfg: string, re: RegExp): string {
  const out = fresh('run-out');
  assertCleanFailure(runCli(['run', cfg, '--out', out], { timeoutMs: 30_000 }), re);
  assert.equal(existsSync(join(out, 'run.sqlite')), false, 'no store is created for a rejected config');
  return out;
}

test('7. a rejected run config leaves no store: the corrected rerun starts fresh', () => {
  const out = runRefused(runConfig({ tensorFilter: 'mlp,nonsense' }), /tensorFilter.*nonsense/);
  const again = runCli(['run', runConfig({ tensorFilter: 're:[' }), '--out', out], { timeoutMs: 30_000 });
  assertCleanFailure(again, /tensorFilter/);
  assert.doesNotMatch(again.stderr, /already holds a run/);
});

test('8. export-gguf refuses a broken tokenizer.json (empty vocab, merges naming unknown tokens)', () => {
  const edits: Array<[(j: any) => void, RegExp]> = [
    [(j) => (j.model.vocab = {}), /tokenizer\.json.*vocab/],
    [(j) => (j.model.merges = [['Ġ', 'zzzz']]), /tokenizer\.json.*merge.*zzzz/],
    [(j) => (j.model.merges = ['a b c']), /tokenizer\.json.*merge/],
  ];
  for (const [edit, re] of edits) {
    const dir = copyModel(engineModel, fresh('m0'));
    const j = readJson(join(dir, 'tokenizer.json'));
    edit(j);
    writeJson(join(dir, 'tokenizer.json'), j);
    bothRefuse(dir, re);
  }
});

test('9. run config values are checked completely (types, ranges, paths) before the loop starts', () => {
  runRefused(runConfig({}, { oodExperts: [join(tmp.path, 'no-such-model')] }), /oodExperts.*no-such-model/);
  runRefused(runConfig({ failedAsRejected: 'yes' }), /failedAsRejected/);
  runRefused(runConfig({ eval: { calculator: 'on' } }), /eval\.calculator/);
  runRefused(runConfig({ name: 5 }), /name/);
  runRefused(runConfig({ dpo: { maxLen: 1 } }), /dpo\.maxLen/);
  runRefused(runConfig({ temperature: { t1: '1.2', decay: 0.2 } }), /temperature\.t1/);
  runRefused(runConfig({}, { dev: join(tmp.path, 'missing.jsonl') }), /world\.dev/);
});

test('10. density, gamma and epsilon have one valid range in every method, stated in the message', () => {
  const run = (method: string, p: Record<string, unknown>, re: RegExp) => {
    const out = fresh('out');
    assertCleanFailure(runCli(['merge', mergeConfig({ merge_method: method, base_model: base, models: [{ model: m1, parameters: { weight: 1, ...p } }] }), out]), re);
    assert.deepEqual(leftovers(out), []);
  };
  for (const method of ['ties', 'dare_ties', 'della', 'breadcrumbs']) {
    run(method, { density: 0 }, /density.*must be in \(0, 1\]/);
    run(method, { density: 1.5 }, /density.*must be in \(0, 1\]/);
  }
  run('della', { density: 0.5, epsilon: -0.1 }, /epsilon.*must be in \[0, 1\)/);
  run('breadcrumbs', { density: 0.5, gamma: 1 }, /gamma.*must be in \[0, 1\)/);
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  assert.match(readme, /`density` in \(0, 1\]/);
});

test('11. a parameter filter has the syntax of include_tensors: substring or /regex/, validated', () => {
  const out = fresh('out');
  assertCleanFailure(runCli(['merge', mergeConfig(ta([{ filter: '/[/', value: 1 }, { value: 0 }])), out]), /filter: bad regex \/\[\/: /);
  const ok = fresh('out');
  const only = { merge_method: 'task_arithmetic', base_model: base, models: [{ model: m1, parameters: { weight: [{ filter: '/^model\\.layers\\.1\\..*mlp/', value: 1 }, { value: 0 }] } }] };
  assertSuccess(runCli(['merge', mergeConfig(only), ok]));
  const o = Checkpoint.open(ok);
  const b = Checkpoint.open(base);
  try {
    // weight 1 on layer 1's MLP (the regex), 0 elsewhere: m1's task vector lands only there
    const same = (n: string) => o.readF32(n).every((v, i) => v === b.readF32(n)[i]);
    assert.ok(!same('model.layers.1.mlp.up_proj.weight'));
    assert.ok(same('model.layers.0.mlp.up_proj.weight'));
    assert.ok(same('model.layers.1.self_attn.q_proj.weight'));
  } finally {
    o.close();
    b.close();
  }
});

test('12. a FIFO where a file is expected is refused at once (merge, inspect)', () => {
  const b = fresh('base');
  makeMergeModel(b, 1);
  rmSync(join(b, 'model.safetensors'));
  execFileSync('mkfifo', [join(b, 'model.safetensors')]);
  assertCleanFailure(runCli(['inspect', b], { timeoutMs: 15_000 }), /model\.safetensors.*not a regular file/);
  const out = fresh('out');
  assertCleanFailure(runCli(['merge', mergeConfig({ ...ta(0.5), base_model: b }), out], { timeoutMs: 15_000 }), /model\.safetensors.*not a regular file/);
  assert.deepEqual(leftovers(out), []);
  const c = fresh('base');
  makeMergeModel(c, 1);
  rmSync(join(c, 'config.json'));
  execFileSync('mkfifo', [join(c, 'config.json')]);
  assertCleanFailure(runCli(['inspect', c], { timeoutMs: 15_000 }), /config\.json.*not a regular file/);
});
