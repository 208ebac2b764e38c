import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { command, syntheticLlama } from './check-algorithm.ts';
import { UsageError } from './command.ts';

async function capture(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.map(String).join(' '));
  try {
    const code = await command.run(args);
    return { code, out: lines.join('\n') };
  } finally {
    console.log = orig;
  }
}

test('check-algorithm: accepts a contract algorithm (real stage on a synthetic small Llama), rejects a bad one with exit 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'selfdev-check-'));
  try {
    const good = await capture(['algorithms/algorithm_a.js', '--json']);
    assert.equal(good.code, 0, good.out);
    const v = JSON.parse(good.out) as { ok: boolean; stage: string; timings: { runs: number } };
    assert.equal(v.ok, true);
    assert.equal(v.stage, 'real');
    assert.equal(v.timings.runs, 1 + 1 + 4 + 2 + syntheticLlama(1).tensors.length);
    const bad = join(dir, 'bad.js');
    writeFileSync(bad, 'function merge(taskVectors, ctx) {\n  return taskVectors[0].mean(0);\n}\n');
    const r = await capture([bad]);
    assert.equal(r.code, 1);
    assert.match(r.out, /REJECTED/);
    assert.match(r.out, /bad-shape \(at smoke\): merge returned shape \[10\] for a tensor of shape \[6, 10\]/);
    await assert.rejects(command.run([]), UsageError);
    await assert.rejects(command.run([bad, '--seed', 'x']), /--seed must be a non-negative integer/);
    await assert.rejects(command.run([join(dir, 'missing.js')]), /cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('syntheticLlama: shapes of a small Llama, seeded', () => {
  const a = syntheticLlama(1, 2, 8, 16, 10, 1);
  assert.deepEqual(a.tensors.map((t) => [t.name, t.shape.join('x'), t.kind]).slice(0, 3), [
    ['model.embed_tokens.weight', '10x8', 'embedding'],
    ['model.layers.0.input_layernorm.weight', '8', 'norm'],
    ['model.layers.0.self_attn.q_proj.weight', '8x8', 'attention'],
  ]);
  assert.equal(a.tensors.find((t) => t.name.endsWith('down_proj.weight'))!.shape.join('x'), '8x16');
  assert.deepEqual(a.tensors[0]!.taskVectors[1], syntheticLlama(1, 2, 8, 16, 10, 1).tensors[0]!.taskVectors[1]);
});
