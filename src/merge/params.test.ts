import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, gradientAt, layerOf, resolveParams, tensorSeed } from './params.ts';

test('layerOf reads the layer index from HF tensor names', () => {
  assert.equal(layerOf('model.layers.12.mlp.up_proj.weight'), 12);
  assert.equal(layerOf('model.embed_tokens.weight'), null);
  assert.equal(layerOf('lm_head.weight'), null);
});

test('gradients interpolate linearly over layers; non-layer tensors take t = 0', () => {
  // 5 layers, gradient [0, 1]: t = i/4
  for (let i = 0; i < 5; i++) assert.ok(Math.abs(gradientAt([0, 1], i, 5) - i / 4) < 1e-12);
  // 3 entries over 5 layers: layer 1 → t=.25 → s=.5 → halfway between entries 0 and 1
  assert.ok(Math.abs(gradientAt([0.2, 0.6, 0.2], 1, 5) - 0.4) < 1e-12);
  assert.equal(gradientAt([0.2, 0.6, 0.2], 2, 5), 0.6);
  assert.equal(gradientAt([0.2, 0.6, 0.2], 4, 5), 0.2);
  assert.equal(gradientAt([0.3, 0.9], null, 5), 0.3);
  assert.equal(gradientAt([0.3, 0.9], 0, 1), 0.9); // one layer: t = 1
});

test('filter lists pick the first matching entry; a bare value entry matches everything', () => {
  const raw = [{ filter: 'mlp', value: 0.7 }, { filter: 'self_attn', value: [0, 1] }, { value: 0.3 }];
  assert.equal(evaluate(raw, 'model.layers.0.mlp.up_proj.weight', 0, 3), 0.7);
  assert.equal(evaluate(raw, 'model.layers.2.self_attn.q_proj.weight', 2, 3), 1);
  assert.equal(evaluate(raw, 'model.norm.weight', null, 3), 0.3);
  assert.equal(evaluate([{ filter: 'mlp', value: 1 }], 'model.norm.weight', null, 3), undefined);
});

test('model parameters win over global ones, which win over defaults; required ones must exist', () => {
  const specs = [
    { name: 'weight', type: 'number' as const, required: true },
    { name: 'density', type: 'number' as const, default: 1 },
    { name: 'normalize', type: 'boolean' as const, default: true },
  ];
  const r = resolveParams(specs, { weight: 0.5 }, { weight: 2, density: 0.3 }, 'x', null, 1, 'm');
  assert.deepEqual(r, { weight: 0.5, density: 0.3, normalize: true });
  assert.throws(() => resolveParams(specs, {}, {}, 'x', null, 1, 'models[0]'), /models\[0\]: parameter 'weight' has no value for tensor x/);
  assert.throws(() => resolveParams(specs, { weight: 1, normalize: 0.5 }, {}, 'x', null, 1, 'm'), /'normalize' must be true or false/);
});

test('tensor seeds are stable and differ by name and run seed', () => {
  assert.equal(tensorSeed(1, 'a.weight'), tensorSeed(1, 'a.weight'));
  assert.notEqual(tensorSeed(1, 'a.weight'), tensorSeed(2, 'a.weight'));
  assert.notEqual(tensorSeed(1, 'a.weight'), tensorSeed(1, 'b.weight'));
});
