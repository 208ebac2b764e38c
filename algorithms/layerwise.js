/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// Layer-wise schedule: average of the task vectors times a lambda that grows linearly from
// LOW at the first layer to HIGH at the last; tensors outside the layers use LOW.
const LOW = 0.3;
const HIGH = 0.8;

function merge(taskVectors, ctx) {
  const frac = ctx.layer === null || ctx.numLayers < 2 ? 0 : ctx.layer / (ctx.numLayers - 1);
  const lambda = LOW + (HIGH - LOW) * frac;
  return torch.stack(taskVectors).mean(0).mul(lambda * taskVectors.length * 0.5);
}
