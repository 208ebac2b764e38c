import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMergeConfig, parseMergeConfig } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'selfdev-config-'));
for (const m of ['base', 'a', 'b']) mkdirSync(join(dir, m));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function cfg(yaml: string): string {
  const p = join(dir, `c${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(p, yaml);
  return p;
}

test('a mergekit config parses: models, parameters, gradients, filters, dtypes, tokenizer', () => {
  const c = loadMergeConfig(cfg(`
merge_method: dare_ties
base_model: base
models:
  - model: a
    parameters: {weight: [0.2, 0.6, 0.2], density: 0.5}
  - model: b
    parameters:
      weight: [{filter: mlp, value: 0.7}, {value: 0.3}]
parameters: {lambda: 1.0, int8_mask: true}
dtype: float32
out_dtype: bfloat16
tokenizer: {source: a}
`));
  assert.equal(c.method, 'dare_ties');
  assert.equal(c.base!.path, join(dir, 'base'));
  assert.equal(c.models.length, 2);
  assert.deepEqual(c.models[0]!.parameters.weight, [0.2, 0.6, 0.2]);
  assert.deepEqual(c.models[1]!.parameters.weight, [{ filter: 'mlp', value: 0.7 }, { filter: undefined, value: 0.3 }]);
  assert.equal(c.dtype, 'F32');
  assert.equal(c.outDtype, 'BF16');
  assert.equal(c.tokenizerSource, join(dir, 'a'));
});

test('unsupported mergekit options are rejected with a message saying so', () => {
  assert.throws(() => parseMergeConfig({ merge_method: 'passthrough', slices: [] }, dir), /slices .* not supported yet/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: ['a'], tokenizer_source: 'union' }, dir), /union" is not supported/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: ['a+lora'] }, dir), /LoRA adapters/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: ['a'], tokenizer: { source: 'a', pad_to_multiple_of: 8 } }, dir), /tokenizer.pad_to_multiple_of is not supported/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: ['a'], whatever: 1 }, dir), /unknown config key 'whatever'/);
});

test('bad values give specific errors', () => {
  assert.throws(() => parseMergeConfig({ models: ['a'] }, dir), /merge_method is required/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: [] }, dir), /non-empty list/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: ['nope'] }, dir), /model folder 'nope' not found/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: ['org/some-model'] }, dir), /Hugging Face Hub id/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: [{ model: 'a', parameters: { weight: 'x' } }] }, dir), /models\[0\]\.parameters\.weight: expected a number/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: ['a'], dtype: 'int8' }, dir), /dtype: unsupported dtype 'int8'/);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: [{ model: 'a', parameters: { weight: [1, { value: 2 }] } }] }, dir), /all numbers .* or all \{filter, value\}/);
  assert.throws(() => parseMergeConfig({ merge_method: 'custom', models: ['a'] }, dir), /needs `algorithm/);
  assert.throws(() => loadMergeConfig(cfg('merge_method: linear\nmerge_method: ties\n')), /invalid YAML/);
  assert.throws(() => loadMergeConfig(join(dir, 'missing.yml')), /cannot read config .*ENOENT/);
});

test('selfdev extensions: task_vector_base and tensor filters', () => {
  const c = parseMergeConfig({ merge_method: 'task_arithmetic', base_model: 'base', task_vector_base: 'a', models: ['b'], include_tensors: ['mlp'], exclude_tensors: ['/layers\\.0\\./'] }, dir);
  assert.equal(c.taskVectorBase!.path, join(dir, 'a'));
  assert.deepEqual(c.includeTensors, ['mlp']);
  assert.throws(() => parseMergeConfig({ merge_method: 'linear', models: ['a'], exclude_tensors: ['/(/'] }, dir), /bad regex/);
});
