/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// Task arithmetic: lambda times the sum of the task vectors (mergekit task_arithmetic, weight 1).
const LAMBDA = 0.4;

function merge(taskVectors, ctx) {
  return torch.stack(taskVectors).sum(0).mul(LAMBDA);
}
