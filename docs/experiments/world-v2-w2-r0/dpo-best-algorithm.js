// Discovered by selfdev run (program 47664341a5e6cde2f3ec6ae4d89d0e9affea269c610aef3c6893e814dda27fa2; dev 0.2, select 0.206, test 0.237).
// The loop merged with ctx.seed = 43703524 and tensor filter "mlp".
/**
 * Task arithmetic.
 * Task arithmetic: a scaled mean of the task vectors.
 */

const SCALE = 1; // task-vector scaling

function discoveredMerge(taskVectors, ctx) {
  // fixed per-model weights (cycled when there are more models)
  const weights = [0.75, 0.75, 0.2];
  let merged = torch.zeros_like(taskVectors[0]);
  for (let i = 0; i < taskVectors.length; i++) {
    merged = merged.add(taskVectors[i], weights[i % weights.length]);
  }
  merged = merged.mul(SCALE);
  return merged;
}
// tensor filter of the loop: other tensors keep the seed
function merge(taskVectors, ctx) {
  if (!(["mlp"].includes(ctx.kind))) return taskVectors[0].mul(0);
  return discoveredMerge(taskVectors, ctx);
}
