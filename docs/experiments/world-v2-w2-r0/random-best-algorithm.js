// Discovered by selfdev run (program 61914be571d0e6a099ccfbb9272073f9c0d1a9403a18632b8a7005a1aaed65c6; dev 0.15, select 0.141, test 0.153).
// The loop merged with ctx.seed = 3033749547 and tensor filter "mlp".
/**
 * Spherical interpolation.
 * SLERP: spherical interpolation folded over the task vectors.
 * MLP tensors only.
 * MLP weights scaled by 1.5, attention by 0.5.
 */

const T = 0.3;
const SCALE = 1.5;

function slerp(a, b, t) {
  const c = Math.min(1, Math.max(-1, torch.cosine_similarity(a, b).item()));
  const theta = Math.acos(c);
  if (theta < 1e-4) {
    // nearly parallel: linear interpolation
    return a.mul(1 - t).add(b.mul(t));
  }
  const s = Math.sin(theta);
  return a.mul(Math.sin((1 - t) * theta) / s).add(b.mul(Math.sin(t * theta) / s));
}

function discoveredMerge(taskVectors, ctx) {
  if (ctx.kind !== 'mlp') {
    return torch.zeros_like(taskVectors[0]);
  }
  let merged = taskVectors[0];
  for (let i = 1; i < taskVectors.length; i++) {
    merged = slerp(merged, taskVectors[i], T);
  }
  merged = merged.mul(SCALE);
  merged = merged.mul(ctx.kind === 'mlp' ? 1.2 : ctx.kind === 'attention' ? 0.8 : 1);
  return merged;
}
// tensor filter of the loop: other tensors keep the seed
function merge(taskVectors, ctx) {
  if (!(["mlp"].includes(ctx.kind))) return taskVectors[0].mul(0);
  return discoveredMerge(taskVectors, ctx);
}
