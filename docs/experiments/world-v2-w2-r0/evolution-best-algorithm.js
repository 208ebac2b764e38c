// Discovered by selfdev run (program 148e3b230ef5ad18d062316f5ddccd3bdfe325f5935c78e50a9292aea7e3a167; dev 0.225, select 0.21, test 0.222).
// The loop merged with ctx.seed = 3616475404 and tensor filter "mlp".
/**
 * Task arithmetic.
 * Task arithmetic: a scaled sum of the task vectors.
 */

const SCALE = 1.16;

// task-vector scaling

function discoveredMerge(taskVectors, ctx) {
  // fixed per-model weights (cycled when there are more models)
  const weights = [0.75, 0.25, 0.0808];
  let merged = torch.zeros_like(taskVectors[0]);
  for (let i = 0; i < taskVectors.length; i++) {
    merged = merged.add(taskVectors[i], weights[i % weights.length]);
  }
  merged = merged.mul(SCALE);
  return (merged).mul(1.59);
}

// tensor filter of the loop: other tensors keep the seed
function merge(taskVectors, ctx) {
  if (!(["mlp"].includes(ctx.kind))) return taskVectors[0].mul(0);
  return discoveredMerge(taskVectors, ctx);
}
