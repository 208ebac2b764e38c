/**
 * Seed corpus for pre-training the builtin code model: many human-designed merge algorithms written
 * against the algorithm contract (`function merge(taskVectors, ctx)`, the sandbox's torch-like API),
 * each in many seeded variations — constants, helper structure, loop style, variable names,
 * comments — and combinations (a base method plus pre/post modifiers such as "MLP only", a layer
 * schedule, norm matching, outlier clamping, a row-mean shift).
 *
 * Families: task arithmetic, TIES, DARE (linear and with sign election), breadcrumbs, DELLA-like
 * magnitude-aware dropping, model stock, SLERP, norm-weighted and cosine-weighted sums,
 * max-magnitude selection, sign-consensus averaging, and row-mean folds like the paper's best
 * algorithm. One consistent style: 2-space indent, semicolons, single quotes, a doc comment header,
 * helpers before `merge`.
 *
 * Every program returns a tensor of the input shape that is exactly zero when all task vectors are
 * zero (the sandbox's smoke test), and uses randomness only through torch's seeded generators.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Rng } from '../nn/rng.ts';
import { CODE_CLOSE, PROGRAM_HEADER } from './prompt.ts';

export const FAMILIES = [
  'task_arithmetic',
  'ties',
  'dare',
  'breadcrumbs',
  'della',
  'model_stock',
  'slerp',
  'norm_weighted',
  'cosine_weighted',
  'max_magnitude',
  'sign_consensus',
  'row_mean_fold',
] as const;
export type Family = (typeof FAMILIES)[number];

export interface CorpusProgram {
  family: Family;
  /** Modifiers applied on top of the family (e.g. 'layer_schedule'). */
  modifiers: string[];
  code: string;
}

// ------------------------------------------------------------------------------ generation state

class Gen {
  readonly helpers: string[] = [];
  readonly consts: string[] = [];
  readonly body: string[] = [];
  /** Identifiers taken: the contract's, and fixed names used inside templates. */
  private readonly used = new Set<string>(['taskVectors', 'ctx', 'torch', 'Math', 'merge', 'raw', 'total', 'exps', 'pairs', 'signSum', 'ordered', 'i', 'j', 'a', 'b', 's', 'e', 'r', 'rate', 'keep', 'mask', 'list']);
  readonly comments: boolean;
  readonly topConsts: boolean;

  constructor(
    readonly rng: Rng,
    readonly canonical = false,
  ) {
    this.comments = rng.next() < 0.6;
    this.topConsts = rng.next() < 0.5;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.rng.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.rng.next() < p;
  }
  /** A fresh identifier from a pool of synonyms. */
  name(pool: readonly string[]): string {
    const free = pool.filter((n) => !this.used.has(n));
    // canonical style: always the pool's first free name, so a program's identifiers follow from its
    // structure (far easier for a tiny model to keep consistent than synonyms drawn at random)
    let n = free.length ? (this.canonical ? free[0] : this.pick(free)) : pool[0];
    for (let k = 2; this.used.has(n); k++) n = `${pool[0]}${k}`;
    this.used.add(n);
    return n;
  }
  /** A numeric constant: either a top-level UPPER_CASE const or a local const, named from the pool. */
  constant(pool: readonly string[], value: number, comment?: string): string {
    const lit = num(value);
    if (this.topConsts) {
      const n = this.name(pool.map(upper));
      this.consts.push(`const ${n} = ${lit};${comment && this.comments ? ` // ${comment}` : ''}`);
      return n;
    }
    const n = this.name(pool);
    if (comment && this.comments) this.line(`// ${comment}`);
    this.line(`const ${n} = ${lit};`);
    return n;
  }
  line(...ls: string[]): void {
    this.body.push(...ls);
  }
  comment(text: string): void {
    if (this.comments) this.body.push(`// ${text}`);
  }
  helper(name: string, code: string): void {
    if (!this.helpers.some((h) => h.includes(`function ${name}(`))) this.helpers.push(code);
    this.used.add(name);
  }
}

function upper(s: string): string {
  return s.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Short decimal form: 0.3, 1e-8, 2. */
function num(x: number): string {
  if (x !== 0 && Math.abs(x) < 1e-3) return x.toExponential();
  return String(Math.round(x * 1e6) / 1e6);
}

const ACC = ['merged', 'result', 'combined', 'delta', 'acc', 'out'] as const;
const ITEM = ['tv', 'vec', 'tau', 'v', 'x'] as const;
const WEIGHTS = ['weights', 'coeffs', 'w', 'alphas'] as const;
const SCALE = ['scale', 'lambda', 'strength', 'gain'] as const;
const DENSITY = ['density', 'keepFrac', 'topFrac'] as const;
const EPS = ['eps', 'tiny'] as const;

// ------------------------------------------------------------------------------ shared helpers

/** Sign election + disjoint mean over `list` (TIES step 2–3); declares and returns the variable name. */
function electAndAverage(g: Gen, list: string, acc: string): void {
  const elected = g.name(['elected', 'majority', 'signs']);
  const agree = g.name(['agree', 'match', 'same']);
  const count = g.name(['count', 'votes', 'n']);
  const item = g.name(ITEM);
  g.comment(g.pick(['elect the sign with the larger total mass', 'majority sign by summed magnitude', 'resolve sign conflicts']));
  if (g.chance(0.7)) g.line(`const ${elected} = torch.stack(${list}).sum(0).sign();`);
  else g.line(`const ${elected} = torch.stack(${list}.map((${item}) => ${item}.sign())).sum(0).sign();`);
  g.line(`let ${acc} = torch.zeros_like(taskVectors[0]);`, `let ${count} = torch.zeros_like(taskVectors[0]);`);
  g.line(`for (const ${item} of ${list}) {`);
  g.line(`  const ${agree} = ${item}.mul(${elected}).gt(0);`);
  g.line(`  ${acc} = ${acc}.add(${item}.mul(${agree}));`);
  g.line(`  ${count} = ${count}.add(${agree});`);
  g.line('}');
  g.comment('disjoint mean: average only the values that agree with the elected sign');
  g.line(`${acc} = ${acc}.div(${count}.clamp(1));`);
}

/** Plain (optionally weighted) sum of `list` into `acc`, in one of several styles. */
function sumInto(g: Gen, list: string, acc: string, mean: boolean): void {
  const style = g.rng.int(3);
  const item = g.name(ITEM);
  if (style === 0) {
    g.line(`let ${acc} = torch.stack(${list}).${mean ? 'mean' : 'sum'}(0);`);
  } else if (style === 1) {
    g.line(`let ${acc} = torch.zeros_like(taskVectors[0]);`, `for (const ${item} of ${list}) {`, `  ${acc} = ${acc}.add(${item});`, '}');
    if (mean) g.line(`${acc} = ${acc}.div(${list}.length);`);
  } else {
    g.line(`let ${acc} = ${list}.reduce((a, b) => a.add(b));`);
    if (mean) g.line(`${acc} = ${acc}.div(${list}.length);`);
  }
}

// ------------------------------------------------------------------------------ families

type Builder = (g: Gen, acc: string) => string;

const families: Record<Family, Builder> = {
  task_arithmetic(g, acc) {
    const mean = g.chance(0.5);
    const lam = g.constant(SCALE, mean ? g.pick([0.8, 1, 1.2, 1.5, 2]) : g.pick([0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1]), 'task-vector scaling');
    if (g.chance(0.3)) {
      const w = g.name(WEIGHTS);
      const weights = g.pick([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.6, 0.2, 0.2], [0.34, 0.33, 0.33], [0.25, 0.5, 0.25]]);
      g.comment('fixed per-model weights (cycled when there are more models)');
      g.line(`const ${w} = [${weights.map(num).join(', ')}];`);
      g.line(`let ${acc} = torch.zeros_like(taskVectors[0]);`);
      g.line('for (let i = 0; i < taskVectors.length; i++) {', `  ${acc} = ${acc}.add(taskVectors[i], ${w}[i % ${w}.length]);`, '}');
    } else {
      g.comment(mean ? 'average of the task vectors' : 'sum of the task vectors');
      sumInto(g, 'taskVectors', acc, mean);
    }
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return 'Task arithmetic: a scaled ' + (mean ? 'mean' : 'sum') + ' of the task vectors.';
  },

  ties(g, acc) {
    const density = g.constant(DENSITY, g.pick([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]), 'fraction of entries kept per task vector');
    const lam = g.constant(SCALE, g.pick([0.6, 0.8, 1, 1.2, 1.5]));
    const trimmed = g.name(['trimmed', 'sparse', 'kept']);
    const item = g.name(ITEM);
    if (g.chance(0.5)) {
      g.helper('trim', `function trim(${item}, frac) {\n  // keep the largest-magnitude entries\n  return ${item}.mul(${item}.topk_mask(frac));\n}`);
      g.line(`const ${trimmed} = taskVectors.map((${item}) => trim(${item}, ${density}));`);
    } else {
      g.comment('trim: keep the top entries by magnitude');
      g.line(`const ${trimmed} = taskVectors.map((${item}) => ${item}.mul(${item}.topk_mask(${density})));`);
    }
    electAndAverage(g, trimmed, acc);
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return 'TIES merging: trim small entries, elect a sign per entry, average the agreeing values.';
  },

  dare(g, acc) {
    const p = g.constant(['dropRate', 'dropProb', 'p'], g.pick([0.1, 0.3, 0.5, 0.7, 0.8, 0.9]), 'probability of dropping an entry');
    const lam = g.constant(SCALE, g.pick([0.3, 0.5, 0.7, 1]));
    const dropped = g.name(['dropped', 'rescaled', 'sparse']);
    const item = g.name(ITEM);
    const bern = g.chance(0.5);
    const maskFor = (x: string, rate: string) => (bern ? `torch.bernoulli(1 - ${rate}, ${x}.shape)` : `${x}.rand_like().ge(${rate})`);
    if (g.chance(0.5)) {
      g.helper('dropAndRescale', `function dropAndRescale(${item}, rate) {\n  const keep = ${maskFor(item, 'rate')};\n  return ${item}.mul(keep).div(1 - rate);\n}`);
      g.line(`const ${dropped} = taskVectors.map((${item}) => dropAndRescale(${item}, ${p}));`);
    } else {
      g.comment('randomly drop entries and rescale the survivors');
      g.line(`const ${dropped} = taskVectors.map((${item}) => ${item}.mul(${maskFor(item, p)}).div(1 - ${p}));`);
    }
    const ties = g.chance(0.5);
    if (ties) electAndAverage(g, dropped, acc);
    else sumInto(g, dropped, acc, false);
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return ties ? 'DARE-TIES: random drop with rescaling, then sign election.' : 'DARE: random drop with rescaling, then a scaled sum.';
  },

  breadcrumbs(g, acc) {
    const density = g.constant(DENSITY, g.pick([0.3, 0.5, 0.7, 0.8, 0.9]), 'fraction kept');
    const gamma = g.constant(['gamma', 'outlierFrac', 'topCut'], g.pick([0.005, 0.01, 0.02, 0.05]), 'largest entries treated as outliers');
    const lam = g.constant(SCALE, g.pick([0.3, 0.5, 0.7, 1]));
    const masked = g.name(['masked', 'crumbs', 'kept']);
    const item = g.name(ITEM);
    g.comment('keep a band of magnitudes: drop both the smallest entries and the largest outliers');
    if (g.chance(0.5)) {
      g.helper('band', `function band(${item}, keep, cut) {\n  const mask = ${item}.topk_mask(Math.min(1, keep + cut)).sub(${item}.topk_mask(cut));\n  return ${item}.mul(mask);\n}`);
      g.line(`const ${masked} = taskVectors.map((${item}) => band(${item}, ${density}, ${gamma}));`);
    } else {
      g.line(`const ${masked} = taskVectors.map((${item}) => ${item}.mul(${item}.topk_mask(Math.min(1, ${density} + ${gamma})).sub(${item}.topk_mask(${gamma}))));`);
    }
    const ties = g.chance(0.3);
    if (ties) electAndAverage(g, masked, acc);
    else sumInto(g, masked, acc, false);
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return 'Model breadcrumbs: keep a band of mid-to-large magnitudes per task vector' + (ties ? ', then TIES sign election.' : ', then a scaled sum.');
  },

  della(g, acc) {
    const density = g.constant(DENSITY, g.pick([0.3, 0.4, 0.5, 0.6, 0.7]), 'mean keep probability');
    const eps = g.constant(['epsilon', 'spread', 'delta'], g.pick([0.1, 0.15, 0.2, 0.25]), 'spread of keep probabilities');
    const lam = g.constant(SCALE, g.pick([0.5, 0.8, 1]));
    const kept = g.name(['kept', 'pruned', 'survivors']);
    const item = g.name(ITEM);
    g.helper(
      'magnitudeDrop',
      [
        `function magnitudeDrop(${item}, keep, spread) {`,
        `  const mag = ${item}.abs();`,
        '  // larger entries get a higher keep probability',
        '  const rel = mag.div(mag.amax().add(1e-12));',
        '  const prob = rel.mul(2 * spread).add(keep - spread).clamp(0.01, 1);',
        '  const mask = torch.bernoulli(prob);',
        `  return ${item}.mul(mask).div(prob);`,
        '}',
      ].join('\n'),
    );
    g.line(`const ${kept} = taskVectors.map((${item}) => magnitudeDrop(${item}, ${density}, ${eps}));`);
    const ties = g.chance(0.6);
    if (ties) electAndAverage(g, kept, acc);
    else sumInto(g, kept, acc, true);
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return 'DELLA-like: magnitude-aware random dropping with rescaling' + (ties ? ', then sign election.' : ', then the mean.');
  },

  model_stock(g, acc) {
    const n = g.name(['n', 'k', 'count']);
    const cos = g.name(['cos', 'similarity', 'avgCos']);
    const ratio = g.name(['ratio', 't', 'factor']);
    g.line(`const ${n} = taskVectors.length;`);
    g.comment('average of the task vectors');
    g.line(`let ${acc} = torch.stack(taskVectors).mean(0);`);
    g.line(`if (${n} < 2) {`, `  return ${acc};`, '}');
    if (g.chance(0.6)) {
      g.comment('mean pairwise cosine between task vectors');
      g.line(`let ${cos} = 0;`, 'let pairs = 0;');
      g.line(`for (let i = 0; i < ${n}; i++) {`, `  for (let j = i + 1; j < ${n}; j++) {`, `    ${cos} += torch.cosine_similarity(taskVectors[i], taskVectors[j]).item();`, '    pairs += 1;', '  }', '}');
      g.line(`${cos} = Math.max(0, ${cos} / pairs);`);
      g.comment('interpolation ratio of model stock');
      g.line(`const ${ratio} = (${n} * ${cos}) / (1 + (${n} - 1) * ${cos});`);
      g.line(`${acc} = ${acc}.mul(${ratio});`);
    } else {
      g.comment('row-wise cosine for matrices, a single cosine for vectors');
      g.line(`let ${cos} = torch.cosine_similarity(taskVectors[0], taskVectors[1]).clamp(0, 1);`);
      g.line(`if (taskVectors[0].ndim === 2) {`, `  ${cos} = torch.cosine_similarity(taskVectors[0], taskVectors[1], 1).clamp(0, 1).unsqueeze(-1);`, '}');
      g.line(`const ${ratio} = ${cos}.mul(${n}).div(${cos}.mul(${n} - 1).add(1));`);
      g.line(`${acc} = ${acc}.mul(${ratio});`);
    }
    const lam = g.pick([1, 1, 1.2, 1.5]);
    if (lam !== 1) g.line(`${acc} = ${acc}.mul(${num(lam)});`);
    return 'Model stock: shrink the average towards the base by the agreement (cosine) of the task vectors.';
  },

  slerp(g, acc) {
    g.helper(
      'slerp',
      [
        'function slerp(a, b, t) {',
        '  const c = Math.min(1, Math.max(-1, torch.cosine_similarity(a, b).item()));',
        '  const theta = Math.acos(c);',
        '  if (theta < 1e-4) {',
        '    // nearly parallel: linear interpolation',
        '    return a.mul(1 - t).add(b.mul(t));',
        '  }',
        '  const s = Math.sin(theta);',
        '  return a.mul(Math.sin((1 - t) * theta) / s).add(b.mul(Math.sin(t * theta) / s));',
        '}',
      ].join('\n'),
    );
    const equal = g.chance(0.6);
    const t = equal ? '' : g.constant(['t', 'mix', 'blend'], g.pick([0.3, 0.4, 0.5, 0.6, 0.7]), 'interpolation factor');
    g.comment('fold the task vectors pairwise with spherical interpolation');
    g.line(`let ${acc} = taskVectors[0];`);
    g.line('for (let i = 1; i < taskVectors.length; i++) {', `  ${acc} = slerp(${acc}, taskVectors[i], ${equal ? '1 / (i + 1)' : t});`, '}');
    const lam = g.constant(SCALE, g.pick([0.8, 1, 1.2, 1.5, 2]));
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return 'SLERP: spherical interpolation folded over the task vectors' + (equal ? ' with equal weights.' : '.');
  },

  norm_weighted(g, acc) {
    const p = g.pick([1, 2, 0.5, -1, -0.5]);
    const norms = g.name(['norms', 'sizes', 'mags']);
    const w = g.name(WEIGHTS);
    const item = g.name(ITEM);
    const eps = g.constant(EPS, 1e-8);
    g.comment(p > 0 ? 'larger task vectors get more weight' : 'smaller task vectors get more weight');
    g.line(`const ${norms} = taskVectors.map((${item}) => ${item}.norm().item());`);
    g.line(`const raw = ${norms}.map((x) => Math.pow(x + ${eps}, ${num(p)}));`);
    g.line('const total = raw.reduce((a, b) => a + b, 0);');
    g.line(`const ${w} = raw.map((x) => x / total);`);
    g.line(`let ${acc} = torch.zeros_like(taskVectors[0]);`);
    g.line('for (let i = 0; i < taskVectors.length; i++) {', `  ${acc} = ${acc}.add(taskVectors[i].mul(${w}[i]));`, '}');
    const lam = g.constant(SCALE, g.pick([0.8, 1, 1.5, 2, 2.5]));
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return `Norm-weighted sum: weights proportional to the task-vector norm to the power ${num(p)}.`;
  },

  cosine_weighted(g, acc) {
    const center = g.name(['center', 'centroid', 'avg']);
    const sims = g.name(['sims', 'agreement', 'cosines']);
    const w = g.name(WEIGHTS);
    const item = g.name(ITEM);
    g.line(`const ${center} = torch.stack(taskVectors).mean(0);`);
    g.comment('how well each task vector agrees with the average direction');
    g.line(`const ${sims} = taskVectors.map((${item}) => torch.cosine_similarity(${item}, ${center}).item());`);
    if (g.chance(0.5)) {
      const temp = g.constant(['temperature', 'tau', 'sharpness'], g.pick([0.1, 0.2, 0.5, 1]), 'softmax temperature');
      g.line(`const exps = ${sims}.map((s) => Math.exp(s / ${temp}));`);
      g.line('const total = exps.reduce((a, b) => a + b, 0);');
      g.line(`const ${w} = exps.map((e) => e / total);`);
    } else {
      g.line(`const raw = ${sims}.map((s) => Math.max(0, s) + 0.01);`);
      g.line('const total = raw.reduce((a, b) => a + b, 0);');
      g.line(`const ${w} = raw.map((r) => r / total);`);
    }
    g.line(`let ${acc} = torch.zeros_like(taskVectors[0]);`);
    g.line(`taskVectors.forEach((${item}, i) => {`, `  ${acc} = ${acc}.add(${item}, ${w}[i]);`, '});');
    const lam = g.constant(SCALE, g.pick([1, 1.5, 2, 2.5]));
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return 'Cosine-weighted sum: task vectors that agree with the mean direction get more weight.';
  },

  max_magnitude(g, acc) {
    const item = g.name(ITEM);
    g.comment('keep, per entry, the value with the largest magnitude');
    g.line(`let ${acc} = taskVectors[0];`);
    g.line(`for (const ${item} of taskVectors.slice(1)) {`, `  ${acc} = torch.where(${item}.abs().gt(${acc}.abs()), ${item}, ${acc});`, '}');
    const lam = g.constant(SCALE, g.pick([0.3, 0.5, 0.7, 1]));
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return 'Max-magnitude selection: each entry comes from the task vector where it is largest.';
  },

  sign_consensus(g, acc) {
    const agree = g.name(['unanimous', 'consensus', 'agreed']);
    const item = g.name(ITEM);
    const low = g.constant(['conflictScale', 'disagreeWeight', 'damp'], g.pick([0, 0.1, 0.25, 0.5]), 'weight of entries whose signs disagree');
    g.line(`const signSum = torch.stack(taskVectors.map((${item}) => ${item}.sign())).sum(0);`);
    g.comment('entries where every task vector has the same sign');
    g.line(`const ${agree} = signSum.abs().ge(taskVectors.length);`);
    g.line(`let ${acc} = torch.stack(taskVectors).mean(0);`);
    g.line(`${acc} = torch.where(${agree}, ${acc}, ${acc}.mul(${low}));`);
    const lam = g.constant(SCALE, g.pick([1, 1.5, 2]));
    g.line(`${acc} = ${acc}.mul(${lam});`);
    return 'Sign consensus: keep the mean where all signs agree, damp it elsewhere.';
  },

  row_mean_fold(g, acc) {
    const alpha = g.constant(['alpha', 'mix', 'rate'], g.pick([0.3, 0.4, 0.5, 0.5, 0.6, 0.7]), 'weight of each new row mean');
    const dim = g.pick(['-1', '-1', '0']);
    g.helper('rowMean', `function rowMean(y) {\n  // mean over the ${dim === '0' ? 'output' : 'input'} axis, kept for broadcasting\n  return y.mean(${dim === '0' ? '0' : '-1'}, true);\n}`);
    const order = g.pick(['forward', 'forward', 'reverse']);
    const list = order === 'reverse' ? 'ordered' : 'taskVectors';
    if (order === 'reverse') g.line('const ordered = taskVectors.slice().reverse();');
    g.comment('fold: the first task vector stays full rank, the others add per-row offsets');
    g.line(`let ${acc} = ${g.chance(0.8) ? `${list}[0]` : `rowMean(${list}[0])`};`);
    g.line(`for (let i = 1; i < ${list}.length; i++) {`, `  ${acc} = ${acc}.mul(1 - ${alpha}).add(rowMean(${list}[i]).mul(${alpha}));`, '}');
    g.line(`${acc} = ${acc}.expand_as(taskVectors[0]);`);
    const lam = g.pick([1, 1, 1.5, 2]);
    if (lam !== 1) g.line(`${acc} = ${acc}.mul(${num(lam)});`);
    return 'Row-mean fold: blend the running result with the row means of the next task vector.';
  },
};

// ------------------------------------------------------------------------------ modifiers

/** Pre-modifiers run at the top of merge; post-modifiers transform `acc` before it is returned. */
function preMlpOnly(g: Gen): string {
  g.comment('only the MLP weights are merged; everything else keeps the base model');
  g.line("if (ctx.kind !== 'mlp') {", '  return torch.zeros_like(taskVectors[0]);', '}');
  return 'MLP tensors only.';
}

function postLayerSchedule(g: Gen, acc: string): string {
  const shape = g.pick(['linear', 'cosine', 'step', 'bell']);
  const lo = g.pick([0.3, 0.5, 0.6, 0.8, 1]);
  const hi = g.pick([1, 1.2, 1.5, 0.5]);
  const body: Record<string, string> = {
    linear: `  return ${num(lo)} + (${num(hi)} - ${num(lo)}) * depth;`,
    cosine: `  return ${num(lo)} + (${num(hi)} - ${num(lo)}) * 0.5 * (1 - Math.cos(Math.PI * depth));`,
    step: `  return depth < 0.5 ? ${num(lo)} : ${num(hi)};`,
    bell: `  return ${num(lo)} + (${num(hi)} - ${num(lo)}) * Math.exp(-8 * (depth - 0.5) * (depth - 0.5));`,
  };
  g.helper('layerScale', ['function layerScale(ctx) {', '  if (ctx.layer === null || ctx.numLayers <= 1) {', '    return 1;', '  }', '  const depth = ctx.layer / (ctx.numLayers - 1);', body[shape], '}'].join('\n'));
  g.comment('depth-dependent strength');
  g.line(`${acc} = ${acc}.mul(layerScale(ctx));`);
  return `A ${shape} layer schedule from ${num(lo)} to ${num(hi)}.`;
}

function postKindScale(g: Gen, acc: string): string {
  const mlp = g.pick([1, 1.2, 1.5]);
  const attn = g.pick([0.3, 0.5, 0.8]);
  g.comment('different strengths for MLP and attention weights');
  g.line(`${acc} = ${acc}.mul(ctx.kind === 'mlp' ? ${num(mlp)} : ctx.kind === 'attention' ? ${num(attn)} : 1);`);
  return `MLP weights scaled by ${num(mlp)}, attention by ${num(attn)}.`;
}

function postNormMatch(g: Gen, acc: string): string {
  const item = g.name(ITEM);
  g.helper('meanNorm', `function meanNorm(list) {\n  return list.reduce((s, ${item}) => s + ${item}.norm().item(), 0) / list.length;\n}`);
  const cur = g.name(['current', 'size', 'curNorm']);
  g.comment('rescale to the average task-vector norm');
  g.line(`const ${cur} = ${acc}.norm().item();`);
  g.line(`if (${cur} > 1e-12) {`, `  ${acc} = ${acc}.mul(meanNorm(taskVectors) / ${cur});`, '}');
  return 'Rescaled to the mean task-vector norm.';
}

function postClamp(g: Gen, acc: string): string {
  const q = g.pick([0.95, 0.99, 0.999]);
  const limit = g.name(['limit', 'bound', 'cap']);
  g.comment('clip outliers at a magnitude quantile');
  g.line(`const ${limit} = ${acc}.abs().quantile(${num(q)}).item();`);
  g.line(`${acc} = ${acc}.clamp(-${limit}, ${limit});`);
  return `Outliers clipped at the ${num(q * 100)}th percentile of magnitudes.`;
}

function postRowShift(g: Gen, acc: string): string {
  const beta = g.pick([0.1, 0.2, 0.25, 0.5]);
  const item = g.name(ITEM);
  g.comment('add a bias-like shift: the mean row offset of all task vectors');
  g.line(`for (const ${item} of taskVectors) {`, `  ${acc} = ${acc}.add(${item}.mean(-1, true).mul(${num(beta)} / taskVectors.length));`, '}');
  return `Plus ${num(beta)} times the mean row offset.`;
}

function postPrepareAgreement(g: Gen, acc: string): string {
  const floor = g.pick([0.25, 0.5, 0.75]);
  g.helper(
    'prepare',
    [
      'function prepare(stats) {',
      '  // mean pairwise cosine of the task vectors, per tensor',
      '  const agreement = {};',
      '  for (const name of Object.keys(stats)) {',
      '    const c = stats[name].cosine;',
      '    let total = 0;',
      '    let pairs = 0;',
      '    for (let i = 0; i < c.length; i++) {',
      '      for (let j = i + 1; j < c.length; j++) {',
      '        total += c[i][j];',
      '        pairs += 1;',
      '      }',
      '    }',
      '    agreement[name] = pairs > 0 ? total / pairs : 1;',
      '  }',
      '  return agreement;',
      '}',
    ].join('\n'),
  );
  const score = g.name(['agreementScore', 'consensusScore', 'cosScore']);
  g.comment('tensors whose task vectors disagree (low cosine) are damped');
  g.line(`const ${score} = ctx.state && ctx.state[ctx.name] !== undefined ? ctx.state[ctx.name] : 1;`);
  g.line(`${acc} = ${acc}.mul(${num(floor)} + ${num(1 - floor)} * Math.max(0, ${score}));`);
  return `Damped by the whole-model agreement statistics (floor ${num(floor)}).`;
}

const POST: Array<[string, (g: Gen, acc: string) => string, number]> = [
  ['layer_schedule', postLayerSchedule, 0.25],
  ['kind_scale', postKindScale, 0.15],
  ['norm_match', postNormMatch, 0.12],
  ['clamp', postClamp, 0.1],
  ['row_shift', postRowShift, 0.1],
  ['prepare_agreement', postPrepareAgreement, 0.08],
];

const TITLES: Record<Family, string[]> = {
  task_arithmetic: ['Task arithmetic', 'Scaled task-vector sum', 'Linear merge'],
  ties: ['TIES merge', 'Trim, elect sign, merge', 'TIES-style merge'],
  dare: ['DARE merge', 'Drop and rescale', 'DARE-style merge'],
  breadcrumbs: ['Model breadcrumbs', 'Magnitude band merge'],
  della: ['DELLA-style merge', 'Magnitude-aware drop'],
  model_stock: ['Model stock', 'Cosine-shrunk average'],
  slerp: ['SLERP merge', 'Spherical interpolation'],
  norm_weighted: ['Norm-weighted merge', 'Magnitude-weighted sum'],
  cosine_weighted: ['Cosine-weighted merge', 'Agreement-weighted sum'],
  max_magnitude: ['Max-magnitude merge', 'Largest-entry selection'],
  sign_consensus: ['Sign-consensus merge', 'Unanimous-sign average'],
  row_mean_fold: ['Row-mean fold', 'Per-row offset merge'],
};

// ------------------------------------------------------------------------------ public API

/**
 * Identifier style: 'varied' draws every local name from a pool of synonyms; 'canonical' always uses
 * the pool's first free name (same structures and constants, consistent names).
 */
export type CorpusStyle = 'varied' | 'canonical';

/** One program of `family` (random family when omitted), fully determined by `seed` (and `style`). */
export function generateProgram(seed: number, family?: Family, style: CorpusStyle = 'varied'): CorpusProgram {
  const rng = new Rng(seed);
  const fam = family ?? FAMILIES[rng.int(FAMILIES.length)];
  if (!FAMILIES.includes(fam)) throw new Error(`corpus: unknown family ${JSON.stringify(fam)} (known: ${FAMILIES.join(', ')})`);
  if (style !== 'varied' && style !== 'canonical') throw new Error(`corpus: unknown style ${JSON.stringify(style)} (known: varied, canonical)`);
  const g = new Gen(rng, style === 'canonical');
  const acc = g.name(ACC);
  const notes: string[] = [];
  const modifiers: string[] = [];
  if (g.chance(0.25)) {
    notes.push(preMlpOnly(g));
    modifiers.push('mlp_only');
  }
  const desc = families[fam](g, acc);
  for (const [name, fn, p] of POST) {
    if (g.chance(p)) {
      notes.push(fn(g, acc));
      modifiers.push(name);
    }
  }
  g.line(`return ${acc};`);
  const header = ['/**', ` * ${g.pick(TITLES[fam])}.`, ` * ${desc}`, ...notes.map((n) => ` * ${n}`), ' */'].join('\n');
  const parts = [header];
  if (g.consts.length) parts.push(g.consts.join('\n'));
  parts.push(...g.helpers);
  parts.push(['function merge(taskVectors, ctx) {', ...g.body.map((l) => '  ' + l), '}'].join('\n'));
  return { family: fam, modifiers, code: parts.join('\n\n') + '\n' };
}

/**
 * `n` programs: families in rotation (balanced), variations from (seed, i); a program identical to
 * an earlier one is redrawn (up to 50 times, deterministically), so small families repeat only
 * once their variations are exhausted.
 */
export function generateCorpus(n: number, seed: number, style: CorpusStyle = 'varied'): CorpusProgram[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`corpus: n must be a non-negative integer, got ${n}`);
  const seen = new Set<string>();
  return Array.from({ length: n }, (_, i) => {
    const fam = FAMILIES[i % FAMILIES.length];
    let p = generateProgram(mix(seed, i), fam, style);
    for (let k = 1; k <= 50 && seen.has(p.code); k++) p = generateProgram(mix(mix(seed, i), k), fam, style);
    seen.add(p.code);
    return p;
  });
}

/** The training text of one program for the builtin model: the prompt's last lines + code + end. */
export function trainingExample(code: string): { prompt: string; completion: string } {
  return { prompt: PROGRAM_HEADER, completion: code.replace(/\s+$/, '') + CODE_CLOSE };
}

/**
 * Write `n` programs as JSONL ({prompt, completion, family, modifiers}) for `selfdev train`,
 * atomically. Returns the number of distinct programs.
 */
export function writeCorpusJsonl(path: string, n: number, seed: number): { programs: number; distinct: number } {
  const progs = generateCorpus(n, seed);
  const lines = progs.map((p) => JSON.stringify({ ...trainingExample(p.code), family: p.family, modifiers: p.modifiers }));
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, lines.join('\n') + (lines.length ? '\n' : ''));
  renameSync(tmp, path);
  return { programs: progs.length, distinct: new Set(progs.map((p) => p.code)).size };
}

function mix(seed: number, i: number): number {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}
