/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// "Algorithm A", the best GSM8k algorithm of Self-Developing (arXiv 2410.15639, v5 Fig. 11):
// fold over the task vectors, tau <- (1 - ALPHA) * tau + ALPHA * m(tau_i), where m(y) is the row
// mean of y broadcast over the row (for a 1-D tensor: the mean of all entries). For 3 models:
// tau = 1/4 tau_1 + 1/4 m(tau_2) + 1/2 m(tau_3). Like the paper, only MLP tensors are merged.
const ALPHA = 0.5;

function rowMean(y) {
  return y.mean(-1, true); // shape [out, 1] (or [1]); broadcasting repeats it along the row
}

function merge(taskVectors, ctx) {
  if (ctx.kind !== 'mlp') return torch.zeros_like(taskVectors[0]);
  let acc = taskVectors[0];
  for (let i = 1; i < taskVectors.length; i++) acc = acc.mul(1 - ALPHA).add(rowMean(taskVectors[i]).mul(ALPHA));
  return acc;
}
