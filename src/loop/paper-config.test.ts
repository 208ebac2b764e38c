// configs/paper-7b.yml (the paper's 7B setting) checked by `selfdev run --check` on small synthetic
// stand-ins: bf16 Mistral-shaped folders at the paths the config names (no GPU, no 7B download).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { makeLlamaCheckpoint, makeTempDir } from '../io/testing.ts';
import { resolveConfig } from './config.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const CONFIG = join(ROOT, 'configs', 'paper-7b.yml');

function standIns(root: string, o: { expertIntermediate?: number } = {}): void {
  const cfg = resolveConfig(parseYaml(readFileSync(CONFIG, 'utf8')), CONFIG);
  const dims = { layers: 2, hidden: 64, intermediate: 224, vocab: 128, heads: 4, kvHeads: 2, dtype: 'BF16' as const };
  const mistral = (dir: string) => {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...c, architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 4096 }));
  };
  const seed = join(root, cfg.world.seedModel);
  makeLlamaCheckpoint(seed, { ...dims, seed: 1, tokenizer: true, maxShardBytes: 40_000 });
  mistral(seed);
  cfg.world.experts.forEach((e, i) => {
    const d = join(root, e);
    makeLlamaCheckpoint(d, { ...dims, intermediate: i === 2 && o.expertIntermediate ? o.expertIntermediate : dims.intermediate, seed: 10 + i, ...(i === 2 && o.expertIntermediate ? {} : { perturb: { from: seed, scale: 0.01 } }), maxShardBytes: 40_000 });
    mistral(d);
  });
  mkdirSync(join(root, 'data', 'gsm8k'), { recursive: true });
  for (const [k, off] of [['dev', 0], ['test', 10], ['select', 20]] as const) {
    const lines = Array.from({ length: 3 }, (_, i) => JSON.stringify({ question: `What is ${off + i} + 1?`, answer: `${off + i} + 1 = ${off + i + 1}\n#### ${off + i + 1}` }));
    writeFileSync(join(root, cfg.world[k]), lines.join('\n') + '\n');
  }
  const train = Array.from({ length: 6 }, (_, i) => JSON.stringify({ question: `What is ${i} + 2?`, answer: `${i} + 2 = ${i + 2}\n#### ${i + 2}` }));
  writeFileSync(join(root, cfg.eval.train!), train.join('\n') + '\n');
  symlinkSync(join(ROOT, 'algorithms'), join(root, 'algorithms'));
}

function check(root: string, config = CONFIG): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'selfdev.mjs'), 'run', config, '--check'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('configs/paper-7b.yml: the dry run passes on synthetic Mistral-shaped stand-ins, and names what is wrong when it is not', () => {
  const tmp = makeTempDir('selfdev-paper-config-');
  try {
    const ok = join(tmp.path, 'ok');
    standIns(ok);
    const r = check(ok);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /paper-7b\.yml: config OK/);

    // an expert whose MLP does not match the seed's: refused, naming the folder and the tensor
    const bad = join(tmp.path, 'bad');
    standIns(bad, { expertIntermediate: 192 });
    const b = check(bad);
    assert.equal(b.code, 2, b.out);
    assert.match(b.out, /world\.experts: .*SciPhi-Mistral-7B-32k: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[192,64\], the seed has \[224,64\]/);

    // the memory bound over merge.maxMemory: refused before anything runs
    const small = join(tmp.path, 'small.yml');
    writeFileSync(small, readFileSync(CONFIG, 'utf8').replace(/maxMemory: 20GiB/, 'maxMemory: 600MiB'));
    const m = check(ok, small);
    assert.equal(m.code, 2, m.out);
    assert.match(m.out, /world\.experts: merge world: a streamed merge of .* with 3 experts needs up to [\d.]+ GiB .*more than the 0\.59 GiB allowed \(merge\.maxMemory\)/);

    // a missing model folder
    rmSync(join(ok, 'models', 'Abel-7B-002'), { recursive: true });
    const g = check(ok);
    assert.equal(g.code, 2, g.out);
    assert.match(g.out, /world\.experts\[0\]: model folder "models\/Abel-7B-002" not found/);
  } finally {
    tmp.cleanup();
  }
});
