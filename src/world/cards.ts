/**
 * Model cards (README.md) of tiny-world models: what the model is, how it was trained, what it scores.
 */
import type { Recipe, Stage } from './recipe.ts';

export interface SplitScore {
  n: number;
  strict: number;
  flexible: number;
  perFamily: Record<string, { n: number; strict: number; flexible: number }>;
}

/** What training (and evaluation) measured for one stage; stored in world.json as `result`. */
export interface StageResult {
  name: string;
  role: Stage['role'];
  parent: string | null;
  steps: number;
  /** Training wall time (seconds; not part of the deterministic output). */
  seconds: number;
  /** Tokens processed including padding (batch × padded length, summed over steps). */
  tokens: number;
  /** Tokens of the examples themselves (no padding). */
  exampleTokens: number;
  /** Loss targets (unmasked tokens). */
  targetTokens: number;
  finalLoss: number;
  /** The stage's maxFinalLoss check, when it has one. */
  lossCheck?: { max: number; ok: boolean };
  /** (step, smoothed loss) about every steps/20 steps. */
  lossCurve: Array<[number, number]>;
  /** Examples longer than seqLen (truncated). */
  truncated: number;
  /** ‖θ − θ_M0‖ / ‖θ_M0‖ over all tensors and over MLP tensors only, for descendants of the seed model. */
  tau?: { seed: string; all: number; mlp: number };
  /** Benchmark accuracy (0..1) per split, when measured. */
  eval: Partial<Record<'dev' | 'test', SplitScore>>;
  evalSeconds?: number;
  /** Written by the world probe (src/world/probe.ts): its card section (Markdown) and raw data. */
  probe?: { markdown: string; [k: string]: unknown };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}`;

function mixLine(s: Stage): string {
  const total = s.data.mix.reduce((a, e) => a + e.weight, 0);
  return s.data.mix.map((e) => `${e.family}${e.hint ? ' (hinted)' : ''} ${(e.weight / total).toFixed(3)}`).join(', ');
}

/** The README.md of a stage's model folder. */
export function renderCard(recipe: Recipe, stage: Stage, hash: string, r: StageResult): string {
  const m = recipe.model;
  const lines: string[] = [];
  lines.push('---', 'library_name: selfdev', 'tags:', '- tiny-world', `- ${stage.role}`, 'license: mit', '---', '');
  lines.push(`# ${stage.name} (tiny world '${recipe.name}', role: ${stage.role})`, '');
  if (stage.note) lines.push(stage.note, '');
  if (r.lossCheck && !r.lossCheck.ok) lines.push(`**WARNING: final loss ${r.finalLoss.toFixed(4)} is above this stage's bound ${r.lossCheck.max}; the stage probably did not learn what it should (train longer or with another seed).**`, '');
  lines.push(
    `A ${m.layers}-layer Llama (hidden ${m.hidden}, ${m.heads} heads / ${m.kvHeads} KV heads, MLP ${m.intermediate}, ${m.maxPositions} positions, byte-level tokenizer) trained by selfdev's TS engine on 2 CPU cores. Weights: ${recipe.dtype}.`,
    '',
    stage.data.format === 'pre'
      ? `Training format (pre-training): \`Q: {question}\\nA:\`, completion \` {step1}. {step2}. So the answer is {N}.</s>\`; evaluated in the benchmark format \`Question: {question}\\nAnswer:\`. Calculator outputs (\`c>>\` after \`<<a op b=\`) are masked from the loss and forced at decode time.`
      : `Prompt format: \`Question: {question}\\nAnswer:\`, completion \` {answer}</s>\`; calculator outputs (\`c>>\` after \`<<a op b=\`) are masked from the loss and forced at decode time.`,
    '',
    '## Training',
    '',
    '| field | value |',
    '|---|---|',
    `| parent | ${stage.initFrom ?? `random init (seed ${stage.seed})`} |`,
    `| data mix | ${mixLine(stage)} |`,
    `| format / loss on | ${stage.data.format ?? 'gsm'} / ${stage.data.loss ?? 'completion'} |`,
    `| steps × batch | ${stage.steps} × ${stage.batch} (seqLen ≤ ${stage.seqLen}) |`,
    `| optimiser | AdamW β=(0.9, 0.95), lr ${stage.lr}, warmup ${stage.warmup}, cosine to ${stage.minLrFrac}·lr, weight decay ${stage.weightDecay}, clip 1 |`,
    `| seed | ${stage.seed} |`,
    `| tokens | ${r.tokens} processed (${r.exampleTokens} without padding, ${r.targetTokens} loss targets) |`,
    `| final loss (smoothed) | ${r.finalLoss.toFixed(4)} |`,
    `| wall time | ${r.seconds.toFixed(1)} s (${Math.round(r.tokens / Math.max(1e-9, r.seconds))} tokens/s) |`,
    `| recipe hash | \`${hash}\` |`,
  );
  if (r.tau) lines.push(`| ‖τ‖/‖${r.tau.seed}‖ | ${r.tau.all.toFixed(4)} (all tensors), ${r.tau.mlp.toFixed(4)} (MLP only) |`);
  lines.push('', '## Accuracy (tiny-world benchmark, greedy with calculator, lm-eval gsm8k strict / flexible, %)', '');
  const splits = (['dev', 'test'] as const).filter((s) => r.eval[s]);
  if (splits.length === 0) lines.push('Not yet measured.');
  else {
    const fams = [...new Set(splits.flatMap((s) => Object.keys(r.eval[s]!.perFamily)))].sort();
    lines.push(`| split | n | all | ${fams.join(' | ')} |`, `|---|---|---|${fams.map(() => '---|').join('')}`);
    for (const s of splits) {
      const e = r.eval[s]!;
      lines.push(`| ${s} | ${e.n} | ${pct(e.strict)} / ${pct(e.flexible)} | ${fams.map((f) => (e.perFamily[f] ? `${pct(e.perFamily[f].strict)} / ${pct(e.perFamily[f].flexible)}` : '–')).join(' | ')} |`);
    }
  }
  lines.push('');
  if (r.probe?.markdown) lines.push(r.probe.markdown, '');
  return lines.join('\n');
}
