/**
 * Control arms (strategies that produce programs without a trained factory).
 *
 * `CorpusSampler` is the random-search control: it draws programs from the seed corpus generator
 * (src/factory/corpus.ts, human-style algorithms) and from the human algorithms in `algorithms/`
 * with seeded mutations of their numeric constants. Fully determined by the sampling seed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateProgram } from '../factory/index.ts';
import type { AlgorithmFactory, Candidate, FactoryPrompt, SampleOptions } from '../factory/index.ts';
import { Rng } from '../nn/index.ts';

/** Multiplies every decimal constant of `code` by a seeded factor in [1 − s, 1 + s] (s = 0.5·temperature). */
export function mutateConstants(code: string, rng: Rng, temperature: number): string {
  const s = Math.min(0.9, 0.5 * temperature);
  return code.replace(/(?<![\w.])(\d+\.\d+)(?![\w.])/g, (m) => {
    const v = Number(m) * (1 + s * (2 * rng.next() - 1));
    return String(Math.round(v * 1000) / 1000);
  });
}

export class CorpusSampler implements AlgorithmFactory {
  readonly name = 'corpus';
  private readonly human: { name: string; code: string }[];
  constructor(algorithmsDir: string) {
    this.human = readdirSync(algorithmsDir)
      .filter((f) => f.endsWith('.js'))
      .sort()
      .map((f) => ({ name: f, code: readFileSync(join(algorithmsDir, f), 'utf8') }));
  }

  sample(_prompt: FactoryPrompt, n: number, opts: SampleOptions): Promise<Candidate[]> {
    const out: Candidate[] = [];
    for (let i = 0; i < n; i++) {
      const rng = new Rng((opts.seed + i) >>> 0);
      const t0 = performance.now();
      let code: string;
      if (this.human.length > 0 && rng.next() < 0.3) {
        const h = this.human[Math.floor(rng.next() * this.human.length)]!;
        code = mutateConstants(h.code, rng, opts.temperature);
      } else {
        code = generateProgram((opts.seed * 7919 + i * 104729) >>> 0).code;
      }
      out.push({ code, raw: code, ms: performance.now() - t0 });
    }
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
