/**
 * mulberry32: the small seeded uniform generator every seeded step of selfdev's data, splits and
 * statistics draws from (the native kernels use the counter-based `uniformAt` instead). Returns a
 * function giving uniforms in [0, 1); the seed is any 32-bit integer.
 */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
