/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// MLP-only task arithmetic: only MLP weights receive the (averaged) task vectors; attention,
// norms and embeddings keep the seed model's values.
const LAMBDA = 1.0;

function merge(taskVectors, ctx) {
  if (ctx.kind !== 'mlp') return torch.zeros_like(taskVectors[0]);
  return torch.stack(taskVectors).mean(0).mul(LAMBDA);
}
