import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { makeLlamaCheckpoint } from '../io/testing.ts';
import { Checkpoint } from '../io/checkpoint.ts';

const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));
const algorithms = fileURLToPath(new URL('../../algorithms/', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'selfdev-custom-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
const dims = { layers: 2, hidden: 16, intermediate: 32, vocab: 40, heads: 2, kvHeads: 1, dtype: 'F32' as const };
makeLlamaCheckpoint(join(root, 'seed'), { ...dims, seed: 1, tokenizer: true });
makeLlamaCheckpoint(join(root, 'e1'), { ...dims, seed: 2, perturb: { from: join(root, 'seed'), scale: 0.01 } });
makeLlamaCheckpoint(join(root, 'e2'), { ...dims, seed: 3, perturb: { from: join(root, 'seed'), scale: 0.01 } });

function read(dir: string): Map<string, Float32Array> {
  const c = Checkpoint.open(dir);
  const m = new Map(c.tensorNames().map((n) => [n, c.readF32(n)]));
  c.close();
  return m;
}

test('merge_method: custom runs an algorithm file in the sandbox and matches the built-in method', () => {
  writeFileSync(join(root, 'custom.yml'), `merge_method: custom\nalgorithm: ${join(algorithms, 'task_arithmetic.js')}\nbase_model: seed\nmodels: [e1, e2]\n`);
  writeFileSync(join(root, 'ta.yml'), 'merge_method: task_arithmetic\nbase_model: seed\nmodels:\n  - {model: e1, parameters: {weight: 0.4}}\n  - {model: e2, parameters: {weight: 0.4}}\n');
  const json: Record<string, Record<string, unknown>> = {};
  for (const [cfg, out] of [['custom.yml', 'out-custom'], ['ta.yml', 'out-ta']]) {
    const r = spawnSync(process.execPath, [bin, 'merge', join(root, cfg), join(root, out), '--json'], { encoding: 'utf8', cwd: root });
    assert.equal(r.status, 0, r.stderr);
    json[cfg] = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  }
  // --json reports the sandbox process's peak memory beside this process's (Linux: /proc)
  if (existsSync('/proc/self/status')) assert.ok(Number(json['custom.yml']!.sandboxMaxRssBytes) > 20 * 2 ** 20, JSON.stringify(json['custom.yml']));
  assert.ok(!('sandboxMaxRssBytes' in json['ta.yml']!));
  const a = read(join(root, 'out-custom'));
  const b = read(join(root, 'out-ta'));
  for (const [name, x] of a) {
    const y = b.get(name)!;
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-6 * (1 + Math.abs(y[i]!)), `${name}[${i}]: ${x[i]} vs ${y[i]}`);
  }
});

test('a rejected algorithm stops the merge before any output exists, with its category', () => {
  writeFileSync(join(root, 'bad.js'), 'function merge(taskVectors, ctx) { return taskVectors[0].sum(0); }\n');
  writeFileSync(join(root, 'bad.yml'), `merge_method: custom\nalgorithm: bad.js\nbase_model: seed\nmodels: [e1]\n`);
  const r = spawnSync(process.execPath, [bin, 'merge', join(root, 'bad.yml'), join(root, 'out-bad')], { encoding: 'utf8', cwd: root });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /rejected at the smoke stage \(bad-shape\)/);
  assert.equal(existsSync(join(root, 'out-bad')), false);
});
