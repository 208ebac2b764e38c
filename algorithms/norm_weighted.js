/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// Norm-weighted average: each task vector is weighted by its L2 norm (a larger change counts
// more); the weights sum to 1.
function merge(taskVectors, ctx) {
  const norms = taskVectors.map((tv) => tv.norm().item());
  const total = norms.reduce((a, b) => a + b, 0);
  let acc = torch.zeros_like(taskVectors[0]);
  if (total < 1e-12) return acc;
  for (let i = 0; i < taskVectors.length; i++) acc = acc.add(taskVectors[i].mul(norms[i] / total));
  return acc;
}
