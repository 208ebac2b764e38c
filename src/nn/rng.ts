/** Row r of a call with seed s samples from the stream keyed s·ROW_STREAM_STRIDE + r (Rng keeps the key mod 2^32). */
export const ROW_STREAM_STRIDE = 1_000_003;
/** ROW_STREAM_STRIDE⁻¹ mod 2^32 (the stride is odd, so it has one). */
const STRIDE_INVERSE = (() => {
  let x = ROW_STREAM_STRIDE; // Newton's iteration for the inverse mod 2^32: each step doubles the correct bits
  for (let i = 0; i < 5; i++) x = Math.imul(x, 2 - Math.imul(ROW_STREAM_STRIDE, x));
  return x >>> 0;
})();

/** The stream key of row `row` of a call seeded with `seed` (exact for |seed| < 2^32). */
export function rowStreamKey(seed: number, row: number): number {
  return seed * ROW_STREAM_STRIDE + row;
}

/**
 * The seed in [0, 2^32) whose row 0 samples from the same stream as row `row` of a call seeded with
 * `seed`: a one-prompt request with this seed (e.g. to `selfdev serve`) reproduces that row.
 * (x·stride ≡ seed·stride + row (mod 2^32) ⇔ x ≡ seed + row·stride⁻¹.)
 */
export function seedForRow(seed: number, row: number): number {
  return ((seed >>> 0) + Math.imul(row, STRIDE_INVERSE)) >>> 0;
}

/** Small seeded PRNG (mulberry32 over a splitmix-scrambled seed) with uniform, normal, shuffle. */
export class Rng {
  private s: number;
  private spare: number | null = null;

  constructor(seed: number) {
    let z = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    this.s = (z ^ (z >>> 16)) >>> 0;
  }

  /** Internal state, for checkpoints. */
  get state(): number {
    return this.s;
  }
  set state(v: number) {
    this.s = v >>> 0;
    this.spare = null;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
}
