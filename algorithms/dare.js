/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// DARE (linear): drop each entry with probability 1 - DENSITY (seeded), rescale the survivors so
// the L1 norm is preserved, then average the task vectors and scale by lambda.
const DENSITY = 0.5;
const LAMBDA = 1.0;

function merge(taskVectors, ctx) {
  let acc = torch.zeros_like(taskVectors[0]);
  for (const tv of taskVectors) {
    const kept = tv.mul(torch.bernoulli(DENSITY, tv.shape));
    const before = tv.abs().sum().item();
    const after = kept.abs().sum().item();
    const rescale = before > 1e-7 && after > 1e-7 ? before / after : 1;
    acc = acc.add(kept.mul(rescale));
  }
  return acc.mul(LAMBDA / taskVectors.length);
}
