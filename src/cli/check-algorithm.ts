import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError, type Command, parseCli } from './command.ts';
import { uniformAt } from '../tensor/kernels.ts';
import { Sandbox } from '../sandbox/sandbox.ts';
import { validateAlgorithm, type TensorCase } from '../sandbox/validate.ts';
import { tensorKind, tensorLayer } from '../sandbox/types.ts';

const USAGE = `selfdev check-algorithm FILE [--json] [--seed N] [--timeout-ms MS] [--memory-mb MB]

Runs the validation cascade on a merge algorithm written in the contract of
docs/algorithm-contract.md (FILE: .js, or .ts which is transpiled first):
  1. parse (syntax errors with line:col)
  2. smoke run on small random tensors (shape, finiteness, zero task vectors -> ~0, determinism)
  3. real run: every tensor of a synthetic small Llama (2 layers, hidden 64, 3 experts)
Prints the verdict, failure category and message, and timings. Exit code 1 when rejected.

  --json            print one JSON object instead of text
  --seed N          seed of the synthetic tensors and of ctx.rng (default 1234)
  --timeout-ms MS   time limit per merge call (default 2000)
  --memory-mb MB    isolate heap limit (default 32)`;

/** Task vectors shaped like a small Llama: a shared direction plus per-expert noise. */
export function syntheticLlama(seed: number, numModels = 3, hidden = 64, inter = 128, vocab = 128, layers = 2): { tensors: TensorCase[]; numLayers: number } {
  const specs: Array<[string, number[]]> = [['model.embed_tokens.weight', [vocab, hidden]]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    specs.push(
      [`${p}input_layernorm.weight`, [hidden]],
      [`${p}self_attn.q_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.k_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.v_proj.weight`, [hidden, hidden]],
      [`${p}self_attn.o_proj.weight`, [hidden, hidden]],
      [`${p}post_attention_layernorm.weight`, [hidden]],
      [`${p}mlp.gate_proj.weight`, [inter, hidden]],
      [`${p}mlp.up_proj.weight`, [inter, hidden]],
      [`${p}mlp.down_proj.weight`, [hidden, inter]],
    );
  }
  specs.push(['model.norm.weight', [hidden]], ['lm_head.weight', [vocab, hidden]]);
  const tensors = specs.map(([name, shape], ti) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const s0 = (seed * 7919 + ti * 104729) >>> 0;
    const taskVectors = Array.from({ length: numModels }, (_, m) => {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = 0.004 * (uniformAt(s0, i) - 0.5) + 0.01 * (uniformAt((s0 + 31 * (m + 1)) >>> 0, i) - 0.5);
      return out;
    });
    return { name, shape, layer: tensorLayer(name), kind: tensorKind(name), taskVectors };
  });
  return { tensors, numLayers: layers };
}

function int(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
}

export const command: Command = {
  name: 'check-algorithm',
  summary: 'Validate a merge algorithm (JS/TS contract) in the sandbox and print the verdict.',
  usage: USAGE,
  async run(args) {
    const parsed = parseCli(() => parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, seed: { type: 'string' }, 'timeout-ms': { type: 'string' }, 'memory-mb': { type: 'string' } } }));
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new UsageError(`expects exactly one FILE, got ${positionals.length}\n\n${USAGE}`);
    const file = positionals[0]!;
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
    }
    const seed = int(values.seed, 'seed', 1234);
    const timeoutMs = int(values['timeout-ms'], 'timeout-ms', 2000);
    const memoryMb = int(values['memory-mb'], 'memory-mb', 32);
    if (memoryMb < 8) throw new UsageError('--memory-mb must be at least 8');
    const t0 = performance.now();
    const sandbox = new Sandbox({ limits: { timeoutMs, memoryMb, wallMs: timeoutMs * 3 + 2000 } });
    try {
      await sandbox.start();
      const startMs = performance.now() - t0;
      const verdict = await validateAlgorithm(source, { sandbox, seed, language: file.endsWith('.ts') ? 'ts' : 'js', real: syntheticLlama(seed) });
      const totalMs = performance.now() - t0;
      if (values.json) console.log(JSON.stringify({ file, ...verdict, startMs, totalMs }));
      else {
        console.log(`${verdict.ok ? 'ACCEPTED' : 'REJECTED'} ${file}`);
        if (!verdict.ok) console.log(`  ${verdict.category} (at ${verdict.stage}): ${verdict.message}`);
        const t = verdict.timings;
        console.log(`  prepare(): ${verdict.hasPrepare ? 'yes' : 'no'}`);
        console.log(`  timings: parse ${t.parseMs.toFixed(1)} ms, smoke ${t.smokeMs.toFixed(1)} ms, real ${t.realMs.toFixed(1)} ms, ${t.runs} sandbox runs, sandbox start ${startMs.toFixed(0)} ms, total ${totalMs.toFixed(0)} ms`);
      }
      return verdict.ok ? 0 : 1;
    } finally {
      sandbox.close();
    }
  },
};
