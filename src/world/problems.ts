/**
 * One problem of the tiny world's benchmark families, GSM8k format {question, answer, family}: answers
 * are one calculator-annotated equation per step and a final `#### N`, e.g.
 *
 *   question: "Mia has 23 pencils. She buys 15 more. How many pencils does Mia have now?"
 *   answer:   "23 + 15 = <<23+15=38>>38\n#### 38"
 *
 * Design (see the PyTorch prototype's REPORT §5–6): every family shares the same mechanics — one
 * line `a op b = <<a op b=c>>c` per step, the first step's operands copied from the question in the
 * order they appear (a unit constant such as 60 or 12 is the only number not in the question), a
 * second step always `previous-result op next-number` — and the families differ only in which
 * wording maps to which operation (or constant). So experts fine-tuned from a common seed model
 * should need to learn only that routing. `twostep`, `mix` and `unitmix` compose two skills.
 *
 * Everything is integral (exact division), ASCII, questions ≤ 140 characters. Seeded by a small
 * PRNG of our own (mulberry32): same seed → same data on every platform. `problemKey` is the
 * disjointness key the benchmark (bench.ts) deduplicates by.
 */
import { ACTIVITIES, CONTAINERS, FEMALE_NAMES, MALE_NAMES, OBJECTS, PLACES, PRODUCTS } from './names.ts';
import { mulberry32 } from '../tensor/random.ts';

// ------------------------------------------------------------------------------------------ PRNG

/** mulberry32; the seed is any 32-bit integer. */
export class BenchRng {
  /** Uniform in [0, 1). */
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    if (hi < lo) throw new Error(`BenchRng.int: empty range [${lo}, ${hi}]`);
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(a: readonly T[]): T {
    return a[Math.floor(this.next() * a.length)];
  }
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
}

/** FNV-1a of a string → a 32-bit seed (derives independent streams from one seed and a label). */
export function seedFrom(...parts: Array<string | number>): number {
  let h = 0x811c9dc5;
  const s = parts.join('\u0000');
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

// ------------------------------------------------------------------------------------- families

export const BENCH_FAMILIES = ['addsub', 'compare', 'muldiv', 'rates', 'units', 'twostep', 'mix', 'unitmix'] as const;
export type BenchFamily = (typeof BENCH_FAMILIES)[number];
/** Mechanics-only data for the seed model; never in the benchmark. */
export const SEED_FAMILIES = ['lookup', 'bare', 'bare2'] as const;
export type SeedFamily = (typeof SEED_FAMILIES)[number];
export type Family = BenchFamily | SeedFamily;

export interface FamilyInfo {
  name: Family;
  description: string;
  /** Skills a solver needs, in step order (addsub, compare, groups, rates, units; none for seed data). */
  skills: string[];
  steps: 1 | 2;
  inBenchmark: boolean;
}

export const FAMILY_INFO: readonly FamilyInfo[] = [
  { name: 'addsub', description: 'one step: gain / lose verbs (buys more, gives away, sells, in all) -> + or -', skills: ['addsub'], steps: 1, inBenchmark: true },
  { name: 'compare', description: 'one step: comparisons (how many more / fewer than, older, taller, n more than) -> - or +', skills: ['compare'], steps: 1, inBenchmark: true },
  { name: 'muldiv', description: 'one step: equal groups (each box holds, rows of, share equally, pack into groups) -> * or /', skills: ['groups'], steps: 1, inBenchmark: true },
  { name: 'rates', description: 'one step: rates and unit prices (per hour, a day, each costs, miles per hour) -> * or /', skills: ['rates'], steps: 1, inBenchmark: true },
  { name: 'units', description: 'one step: unit conversion with a remembered constant (hour=60 min, dozen=12, dollar=100 cents, week=7 days...) -> * or /', skills: ['units'], steps: 1, inBenchmark: true },
  { name: 'twostep', description: 'two add/sub/compare steps, the second on the first result', skills: ['addsub', 'addsub'], steps: 2, inBenchmark: true },
  { name: 'mix', description: 'a groups or rates step (* or /), then an add/sub step on its result', skills: ['groups|rates', 'addsub'], steps: 2, inBenchmark: true },
  { name: 'unitmix', description: 'a unit conversion step, then an add/sub/compare step on its result', skills: ['units', 'addsub|compare'], steps: 2, inBenchmark: true },
  { name: 'lookup', description: 'seed data: read a number off the question ("Mia has 23 pens." / #### 23), no arithmetic', skills: [], steps: 1, inBenchmark: false },
  { name: 'bare', description: 'seed data: explicit one-step arithmetic ("What is 23 + 15?") in the equation format', skills: [], steps: 1, inBenchmark: false },
  { name: 'bare2', description: 'seed data: explicit two-step arithmetic ("What is 4 * 6 - 9?") chaining on the first result', skills: [], steps: 2, inBenchmark: false },
];

export interface Problem {
  question: string;
  answer: string;
  family: Family;
}

type Op = '+' | '-' | '*' | '/';
interface Step {
  a: number;
  op: Op;
  b: number;
  c: number;
}
interface Raw {
  q: string;
  steps: Step[];
  /** Plain-text answer lines used instead of equations (lookup only). */
  text?: string;
  result: number;
}

function st(a: number, op: Op, b: number): Step {
  let c: number;
  if (op === '+') c = a + b;
  else if (op === '-') c = a - b;
  else if (op === '*') c = a * b;
  else {
    c = a / b;
    if (!Number.isInteger(c)) throw new Error(`bench: inexact division ${a} / ${b}`);
  }
  if (c < 0) throw new Error(`bench: negative result ${a} ${op} ${b}`);
  return { a, op, b, c };
}

/** `23 + 15 = <<23+15=38>>38` */
export function stepLine(a: number, op: Op, b: number, c: number): string {
  return `${a} ${op} ${b} = <<${a}${op}${b}=${c}>>${c}`;
}

class Ctx {
  A: string;
  B: string;
  C: string;
  /** She/He, she/he, her/him, her/his */
  P: string;
  p: string;
  O: string;
  o: string;
  o2: string;
  c: string;
  cs: string;
  place: string;
  prod: string;
  act: string;
  constructor(r: BenchRng) {
    const fem = r.next() < 0.5;
    this.A = r.pick(fem ? FEMALE_NAMES : MALE_NAMES);
    [this.P, this.p, this.O] = fem ? ['She', 'she', 'her'] : ['He', 'he', 'him'];
    const others = [...FEMALE_NAMES, ...MALE_NAMES].filter((n) => n !== this.A);
    this.B = r.pick(others);
    this.C = r.pick(others.filter((n) => n !== this.B));
    this.o = r.pick(OBJECTS);
    this.o2 = r.pick(OBJECTS.filter((x) => x !== this.o));
    [this.c, this.cs] = r.pick(CONTAINERS);
    this.place = r.pick(PLACES);
    this.prod = r.pick(PRODUCTS);
    this.act = r.pick(ACTIVITIES);
  }
}

type Gen = (r: BenchRng, k: Ctx) => Raw;

// ----- addsub: one step, gain/lose wording
const addsub: Gen = (r, k) => {
  const t = r.int(0, 11);
  if (t < 6) {
    const x = r.int(2, 99);
    const y = r.int(2, 99);
    const q = [
      `${k.A} has ${x} ${k.o}. ${k.P} buys ${y} more. How many ${k.o} does ${k.A} have now?`,
      `${k.A} picked ${x} ${k.o} and ${k.B} picked ${y} ${k.o}. How many ${k.o} did they pick in all?`,
      `There are ${x} ${k.o} in a ${k.c}. ${k.A} puts in ${y} more. How many ${k.o} are in the ${k.c} now?`,
      `${k.A} had ${x} ${k.o}. ${k.B} gave ${k.O} ${y} more. How many ${k.o} does ${k.A} have?`,
      `A shop sold ${x} ${k.o} on Monday and ${y} on Tuesday. How many ${k.o} did it sell in total?`,
      `${k.A} found ${x} ${k.o} at ${k.place} and ${y} at home. How many ${k.o} did ${k.p} find altogether?`,
    ][t];
    const s = st(x, '+', y);
    return { q, steps: [s], result: s.c };
  }
  const x = r.int(10, 99);
  const y = r.int(2, x - 1);
  const q = [
    `${k.A} had ${x} ${k.o}. ${k.P} gave ${y} to ${k.B}. How many ${k.o} does ${k.A} have left?`,
    `A ${k.c} has ${x} ${k.o}. ${k.A} takes out ${y}. How many ${k.o} are still in the ${k.c}?`,
    `${k.A} made ${x} ${k.o} and sold ${y} of them. How many ${k.o} are left?`,
    `There were ${x} ${k.o} at ${k.place}. ${k.A} took ${y} home. How many ${k.o} remain?`,
    `${k.A} needs ${x} ${k.o}. ${k.P} already has ${y}. How many more ${k.o} does ${k.p} need?`,
    `${k.A} had ${x} ${k.o}. ${k.P} lost ${y} of them. How many ${k.o} does ${k.p} have now?`,
  ][t - 6];
  const s = st(x, '-', y);
  return { q, steps: [s], result: s.c };
};

// ----- compare: one step, comparative wording
const compare: Gen = (r, k) => {
  const t = r.int(0, 7);
  if (t === 3 || t === 6) {
    const x = r.int(t === 6 ? 90 : 2, t === 6 ? 170 : 99);
    const y = r.int(2, t === 6 ? 40 : 99);
    const q = t === 3
      ? `${k.A} has ${x} ${k.o}. ${k.B} has ${y} more ${k.o} than ${k.A}. How many ${k.o} does ${k.B} have?`
      : `${k.A} is ${x} cm tall. ${k.B} is ${y} cm taller than ${k.A}. How tall is ${k.B} in cm?`;
    const s = st(x, '+', y);
    return { q, steps: [s], result: s.c };
  }
  const x = r.int(10, 99);
  const y = r.int(2, x - 1);
  const q = [
    `${k.A} has ${x} ${k.o} and ${k.B} has ${y} ${k.o}. How many more ${k.o} does ${k.A} have than ${k.B}?`,
    `${k.A} is ${x} years old and ${k.B} is ${y} years old. How much older is ${k.A} than ${k.B}?`,
    `${k.A} scored ${x} points and ${k.B} scored ${y} points. How many fewer points did ${k.B} score?`,
    '',
    `${k.A} has ${x} ${k.o}. ${k.B} has ${y} fewer ${k.o} than ${k.A}. How many ${k.o} does ${k.B} have?`,
    `A red ${k.c} holds ${x} ${k.o} and a blue ${k.c} holds ${y}. What is the difference?`,
    '',
    `${k.A} is ${x} years old. ${k.B} is ${y} years younger. How old is ${k.B}?`,
  ][t];
  const s = st(x, '-', y);
  return { q, steps: [s], result: s.c };
};

// ----- muldiv: equal groups
const muldiv: Gen = (r, k) => {
  const t = r.int(0, 7);
  const a = r.int(2, 12);
  const b = r.int(2, 12);
  const p = a * b;
  switch (t) {
    case 0: return one(`A ${k.c} holds ${a} ${k.o}. How many ${k.o} are in ${b} ${k.cs}?`, st(a, '*', b));
    case 1: return one(`${k.A} buys ${b} ${k.cs} with ${a} ${k.o} in each. How many ${k.o} does ${k.p} buy?`, st(b, '*', a));
    case 2: return one(`There are ${b} rows with ${a} chairs in each row. How many chairs are there?`, st(b, '*', a));
    case 3: return one(`${k.A} gives ${a} ${k.o} to each of ${b} friends. How many ${k.o} does ${k.p} give away?`, st(a, '*', b));
    case 4: return one(`${k.A} shares ${p} ${k.o} equally among ${b} friends. How many ${k.o} does each friend get?`, st(p, '/', b));
    case 5: return one(`${k.A} packs ${p} ${k.o} into ${k.cs} of ${a}. How many ${k.cs} does ${k.p} fill?`, st(p, '/', a));
    case 6: return one(`${k.A} puts ${p} ${k.o} in ${b} equal rows. How many ${k.o} are in each row?`, st(p, '/', b));
    default: return one(`${p} students split into teams of ${a}. How many teams are there?`, st(p, '/', a));
  }
};

// ----- rates: per-time rates, unit prices, speeds
const rates: Gen = (r, k) => {
  const t = r.int(0, 8);
  const b = r.int(2, 9);
  if (t === 4 || t === 8) {
    const v = 5 * r.int(2, 12);
    const d = v * b;
    return t === 4
      ? one(`A train goes ${v} miles per hour. How many miles does it go in ${b} hours?`, st(v, '*', b))
      : one(`A train went ${d} miles in ${b} hours at a steady speed. How many miles did it go per hour?`, st(d, '/', b));
  }
  const a = r.int(2, t === 2 || t === 6 ? 20 : 12);
  const p = a * b;
  switch (t) {
    case 0: return one(`${k.A} reads ${a} pages a day. How many pages does ${k.p} read in ${b} days?`, st(a, '*', b));
    case 1: return one(`A machine makes ${a} ${k.prod} per hour. How many ${k.prod} does it make in ${b} hours?`, st(a, '*', b));
    case 2: return one(`${k.A} earns $${a} an hour. How much does ${k.p} earn in ${b} hours?`, st(a, '*', b));
    case 3: return one(`Each ${k.c} costs $${a}. How much do ${b} ${k.cs} cost?`, st(a, '*', b));
    case 5: return one(`${k.A} read ${p} pages in ${b} days, the same each day. How many pages did ${k.p} read per day?`, st(p, '/', b));
    case 6: return one(`${k.A} earned $${p} in ${b} hours. How much did ${k.p} earn per hour?`, st(p, '/', b));
    default: return one(`${k.A} paid $${p} for ${b} ${k.cs}. How much does one ${k.c} cost?`, st(p, '/', b));
  }
};

function one(q: string, s: Step): Raw {
  return { q, steps: [s], result: s.c };
}
function two(q: string, s1: Step, s2: Step): Raw {
  if (s2.a !== s1.c) throw new Error('bench: the second step must start from the first result');
  return { q, steps: [s1, s2], result: s2.c };
}

// ----- units: conversion with a remembered constant
interface Conv {
  k: number;
  max: number;
  fwd: (c: Ctx, n: number) => string;
  back: (c: Ctx, m: number) => string;
  gf: (n: number) => string;
  gb: (m: number) => string;
}
const CONVERSIONS: Conv[] = [
  { k: 60, max: 24, fwd: (c, n) => `${c.A} ${c.act} for ${n} hours. How many minutes did ${c.p} spend?`, back: (c, m) => `${c.A} ${c.act} for ${m} minutes. How many hours is that?`, gf: (n) => `How many minutes are in ${n} hours?`, gb: (m) => `How many hours are in ${m} minutes?` },
  { k: 60, max: 20, fwd: (_c, n) => `A song lasts ${n} minutes. How many seconds long is it?`, back: (_c, m) => `A song lasts ${m} seconds. How many minutes long is it?`, gf: (n) => `How many seconds are in ${n} minutes?`, gb: (m) => `How many minutes are in ${m} seconds?` },
  { k: 24, max: 40, fwd: (c, n) => `${c.A} went on a trip for ${n} days. How many hours was the trip?`, back: (c, m) => `${c.A} went on a trip for ${m} hours. How many days was the trip?`, gf: (n) => `How many hours are in ${n} days?`, gb: (m) => `How many days are in ${m} hours?` },
  { k: 7, max: 99, fwd: (c, n) => `${c.A} stayed at camp for ${n} weeks. How many days is that?`, back: (c, m) => `${c.A} stayed at camp for ${m} days. How many weeks is that?`, gf: (n) => `How many days are in ${n} weeks?`, gb: (m) => `How many weeks are in ${m} days?` },
  { k: 12, max: 60, fwd: (c, n) => `${c.A} bought ${n} dozen ${c.o}. How many ${c.o} did ${c.p} buy?`, back: (c, m) => `${c.A} has ${m} ${c.o}. How many dozen ${c.o} is that?`, gf: (n) => `How many eggs are in ${n} dozen eggs?`, gb: (m) => `How many dozen is ${m} eggs?` },
  { k: 100, max: 20, fwd: (c, n) => `${c.A} has ${n} dollars. How many cents is that?`, back: (c, m) => `${c.A} has ${m} cents. How many dollars is that?`, gf: (n) => `How many cents are in ${n} dollars?`, gb: (m) => `How many dollars are in ${m} cents?` },
  { k: 12, max: 60, fwd: (_c, n) => `A board is ${n} feet long. How many inches long is it?`, back: (_c, m) => `A board is ${m} inches long. How many feet long is it?`, gf: (n) => `How many inches are in ${n} feet?`, gb: (m) => `How many feet are in ${m} inches?` },
  { k: 12, max: 60, fwd: (c, n) => `${c.A} lived in the town for ${n} years. How many months is that?`, back: (c, m) => `${c.A} lived in the town for ${m} months. How many years is that?`, gf: (n) => `How many months are in ${n} years?`, gb: (m) => `How many years are in ${m} months?` },
];
const units: Gen = (r, k) => {
  const conv = r.pick(CONVERSIONS);
  const n = r.int(2, conv.max);
  const m = n * conv.k;
  switch (r.int(0, 3)) {
    case 0: return one(conv.fwd(k, n), st(n, '*', conv.k));
    case 1: return one(conv.back(k, m), st(m, '/', conv.k));
    case 2: return one(conv.gf(n), st(n, '*', conv.k));
    default: return one(conv.gb(m), st(m, '/', conv.k));
  }
};

// ----- twostep: two add/sub/compare steps
const twostep: Gen = (r, k) => {
  const t = r.int(0, 7);
  if (t === 1 || t === 3 || t === 6) {
    const x = r.int(30, 99);
    const y = r.int(2, x - 10);
    const s1 = st(x, '-', y);
    if (t === 3) {
      const w = r.int(2, s1.c - 1);
      return two(`${k.A} had ${x} ${k.o}. ${k.P} lost ${y} and gave away ${w}. How many ${k.o} does ${k.p} have left?`, s1, st(s1.c, '-', w));
    }
    const w = r.int(2, 60);
    return t === 1
      ? two(`A bus has ${x} people. At a stop ${y} people get off and ${w} get on. How many people are on the bus now?`, s1, st(s1.c, '+', w))
      : two(`A shop had ${x} ${k.o}. It sold ${y} and then got ${w} more. How many ${k.o} does it have now?`, s1, st(s1.c, '+', w));
  }
  const x = r.int(10, 80);
  const y = r.int(2, 60);
  const s1 = st(x, '+', y);
  if (t === 2) {
    const w = r.int(2, 60);
    return two(`${k.A} has ${x} ${k.o}, ${k.B} has ${y} and ${k.C} has ${w}. How many ${k.o} do they have in all?`, s1, st(s1.c, '+', w));
  }
  const w = r.int(2, s1.c - 1);
  const s2 = st(s1.c, '-', w);
  switch (t) {
    case 0: return two(`${k.A} has ${x} ${k.o}. ${k.P} buys ${y} more and then gives ${w} to ${k.B}. How many ${k.o} does ${k.A} have now?`, s1, s2);
    case 4: return two(`${k.A} picked ${x} ${k.o} and ${k.B} picked ${y}. They gave away ${w} of them. How many ${k.o} are left?`, s1, s2);
    case 5: return two(`${k.A} has ${x} ${k.o}. ${k.B} has ${y} more than ${k.A}. ${k.C} has ${w} fewer than ${k.B}. How many does ${k.C} have?`, s1, s2);
    default: return two(`${k.A} scored ${x} points, then ${y} more, then lost ${w}. How many points does ${k.p} have now?`, s1, s2);
  }
};

// ----- mix: a groups/rates step, then add/sub
const mix: Gen = (r, k) => {
  const t = r.int(0, 7);
  const a = r.int(2, 12);
  const b = r.int(t === 5 ? 3 : 2, 12);
  const p = a * b;
  switch (t) {
    case 0: {
      const s1 = st(b, '*', a);
      const w = r.int(2, p - 1);
      return two(`${k.A} buys ${b} ${k.cs} of ${a} ${k.o}. ${k.P} gives away ${w} of them. How many ${k.o} are left?`, s1, st(p, '-', w));
    }
    case 1: {
      const w = r.int(2, 60);
      return two(`${k.A} reads ${a} pages a day for ${b} days and then ${w} more pages. How many pages does ${k.p} read in all?`, st(a, '*', b), st(p, '+', w));
    }
    case 2: {
      const w = r.int(2, 60);
      return two(`${k.A} gets ${b} ${k.cs} with ${a} ${k.o} in each. ${k.P} already had ${w}. How many ${k.o} does ${k.p} have now?`, st(b, '*', a), st(p, '+', w));
    }
    case 3: {
      const w = r.int(2, 30);
      return two(`${k.A} shares ${p} ${k.o} equally among ${b} friends. Each friend then buys ${w} more. How many does each have?`, st(p, '/', b), st(a, '+', w));
    }
    case 4: {
      const w = r.int(2, p - 1);
      return two(`${k.A} earns $${a} an hour for ${b} hours and spends $${w}. How much money does ${k.p} have left?`, st(a, '*', b), st(p, '-', w));
    }
    case 5: {
      const w = r.int(2, b - 1);
      return two(`${k.A} packs ${p} ${k.o} into ${k.cs} of ${a} and sells ${w} ${k.cs}. How many ${k.cs} are left?`, st(p, '/', a), st(b, '-', w));
    }
    case 6: {
      const w = r.int(2, p - 1);
      return two(`A machine makes ${a} ${k.prod} per hour. After ${b} hours, ${w} are broken. How many good ${k.prod} are there?`, st(a, '*', b), st(p, '-', w));
    }
    default: {
      const w = r.int(2, 40);
      return two(`${b} friends each have ${a} ${k.o}. ${k.A} gives them ${w} more in all. How many ${k.o} do they have now?`, st(b, '*', a), st(p, '+', w));
    }
  }
};

// ----- unitmix: a conversion step, then add/sub/compare
const unitmix: Gen = (r, k) => {
  const t = r.int(0, 7);
  switch (t) {
    case 0: {
      const n = r.int(2, 5);
      const s1 = st(n, '*', 60);
      const m = r.int(10, s1.c - 1);
      return two(`${k.A} ${k.act} for ${n} hours and ${k.B} for ${m} minutes. How many more minutes did ${k.A} spend?`, s1, st(s1.c, '-', m));
    }
    case 1: {
      const n = r.int(2, 9);
      const s1 = st(n, '*', 12);
      const w = r.int(2, s1.c - 1);
      return two(`${k.A} bought ${n} dozen ${k.o} and gave away ${w} of them. How many ${k.o} are left?`, s1, st(s1.c, '-', w));
    }
    case 2: {
      const n = r.int(2, 9);
      const w = r.int(2, 99);
      return two(`${k.A} has ${n} dollars and ${w} cents. How many cents does ${k.p} have in all?`, st(n, '*', 100), st(n * 100, '+', w));
    }
    case 3: {
      const n = r.int(2, 4);
      const w = r.int(5, 59);
      return two(`A movie lasts ${n} hours and a cartoon lasts ${w} minutes. How many minutes do they last in all?`, st(n, '*', 60), st(n * 60, '+', w));
    }
    case 4: {
      const n = r.int(2, 12);
      const w = r.int(2, 6);
      return two(`${k.A} stayed at camp for ${n} weeks and ${w} days. How many days was ${k.p} there?`, st(n, '*', 7), st(n * 7, '+', w));
    }
    case 5: {
      const n = r.int(2, 9);
      const s1 = st(n, '*', 12);
      const w = r.int(2, s1.c - 1);
      return two(`A rope is ${n} feet long. ${k.A} cuts off ${w} inches. How many inches of rope are left?`, s1, st(s1.c, '-', w));
    }
    case 6: {
      const n = r.int(2, 9);
      const w = r.int(5, 99);
      return two(`${k.A} had ${n} dollars and spent ${w} cents. How many cents does ${k.p} have left?`, st(n, '*', 100), st(n * 100, '-', w));
    }
    default: {
      const n = r.int(2, 12);
      const w = r.int(2, 11);
      return two(`${k.A} is ${n} years and ${w} months old. How many months old is ${k.p}?`, st(n, '*', 12), st(n * 12, '+', w));
    }
  }
};

// ----- seed (mechanics) families
const lookup: Gen = (r, k) => {
  const t = r.int(0, 4);
  const x = r.int(2, 99);
  const y = r.int(2, 99);
  const L: Array<[string, string, number]> = [
    [`${k.A} has ${x} ${k.o} and ${y} ${k.o2}. How many ${k.o2} does ${k.A} have?`, `${k.A} has ${y} ${k.o2}.`, y],
    [`${k.A} is ${x} years old. ${k.B} is ${y} years old. How old is ${k.B}?`, `${k.B} is ${y} years old.`, y],
    [`A ${k.c} holds ${x} ${k.o}. ${k.A} has ${y} ${k.cs}. How many ${k.o} does one ${k.c} hold?`, `One ${k.c} holds ${x} ${k.o}.`, x],
    [`${k.A} went to ${k.place} with ${x} ${k.o}. ${k.B} went with ${y} ${k.o2}. How many ${k.o} did ${k.A} take?`, `${k.A} took ${x} ${k.o}.`, x],
    [`There are ${x} ${k.o} and ${y} ${k.o2} at ${k.place}. How many ${k.o} are there?`, `There are ${x} ${k.o}.`, x],
  ];
  const [q, text, result] = L[t];
  return { q, steps: [], text, result };
};

function randomStep(r: BenchRng): Step {
  switch (r.int(0, 3)) {
    case 0: return st(r.int(2, 150), '+', r.int(2, 99));
    case 1: {
      const a = r.int(4, 199);
      return st(a, '-', r.int(2, a - 1));
    }
    case 2: return st(r.int(2, 12), '*', r.int(2, 12));
    default: {
      const a = r.int(2, 12);
      const b = r.int(2, 12);
      return st(a * b, '/', b);
    }
  }
}
const bare: Gen = (r) => {
  const s = randomStep(r);
  const e = `${s.a} ${s.op} ${s.b}`;
  return one(r.pick([`What is ${e}?`, `Compute ${e}.`, `How much is ${e}?`]), s);
};
const bare2: Gen = (r) => {
  const s1 = randomStep(r);
  const s2 = s1.c > 2 && r.next() < 0.5 ? st(s1.c, '-', r.int(1, s1.c - 1)) : st(s1.c, '+', r.int(2, 60));
  const e = `${s1.a} ${s1.op} ${s1.b} ${s2.op} ${s2.b}`;
  return two(r.pick([`What is ${e}?`, `Compute ${e}.`]), s1, s2);
};

const GENERATORS: Record<Family, Gen> = { addsub, compare, muldiv, rates, units, twostep, mix, unitmix, lookup, bare, bare2 };

/** Whether `f` names a family (benchmark or seed). */
export function isFamily(f: string): f is Family {
  return f in GENERATORS;
}

export interface MakeOptions {
  /** Append the operations to the question, e.g. " (use * then -)": seed-model data that names the op. */
  hint?: boolean;
}

/** One problem of `family` drawn from `r`. */
export function makeProblem(family: Family, r: BenchRng, opts: MakeOptions = {}): Problem {
  const gen = GENERATORS[family];
  if (gen === undefined) throw new Error(`bench: unknown family '${family}' (known: ${Object.keys(GENERATORS).join(', ')})`);
  const raw = gen(r, new Ctx(r));
  const lines = raw.text !== undefined ? [raw.text] : raw.steps.map((s) => stepLine(s.a, s.op, s.b, s.c));
  const p: Problem = { question: raw.q, answer: `${lines.join('\n')}\n#### ${raw.result}`, family };
  return opts.hint === true ? withHint(p) : p;
}

const LEXICON = [
  ...FEMALE_NAMES, ...MALE_NAMES, ...OBJECTS, ...CONTAINERS.flat(), ...PLACES, ...PRODUCTS, ...ACTIVITIES,
  'She', 'He', 'she', 'he', 'her', 'him',
];
const LEXICON_RE = new RegExp(`\\b(?:${[...new Set(LEXICON)].sort((a, b) => b.length - a.length).join('|')})\\b`, 'g');

/**
 * Disjointness key: the family, the question with every name, pronoun, object, container, place,
 * product and activity masked (i.e. the template), the question's integers in order, and the
 * annotation expressions. Two problems share a key iff they are the same problem up to those words.
 */
export function problemKey(p: Problem): string {
  const nums = p.question.match(/\d+/g) ?? [];
  const template = p.question.replace(LEXICON_RE, '_').replace(/\d+/g, '#');
  const exprs = [...p.answer.matchAll(/<<([^=<>]*)=/g)].map((m) => m[1]);
  return `${p.family}|${template}|${nums.join(',')}|${exprs.join(';')}`;
}

/** Append the operation hint " (use + then -)" to a problem's question (read off its annotations). */
export function withHint(p: Problem): Problem {
  const ops = [...p.answer.matchAll(/<<-?[\d.]+([-+*/])/g)].map((m) => m[1]);
  if (ops.length === 0) return p;
  return { ...p, question: `${p.question} (use ${ops.join(' then ')})` };
}
