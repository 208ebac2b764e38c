/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// SLERP of task vectors: spherical interpolation of the first two (t = 0.5); further task vectors
// are folded in with t = 1/(i+1). Falls back to linear interpolation for (anti)parallel or
// near-zero vectors. Coefficients apply to the unnormalised tensors, as in mergekit.
function slerp(a, b, t) {
  const na = a.norm().item();
  const nb = b.norm().item();
  if (na < 1e-8 || nb < 1e-8) return a.mul(1 - t).add(b.mul(t));
  const cos = torch.dot(a, b).item() / (na * nb);
  if (Math.abs(cos) > 0.9995) return a.mul(1 - t).add(b.mul(t));
  const theta = Math.acos(cos);
  const s = Math.sin(theta);
  return a.mul(Math.sin((1 - t) * theta) / s).add(b.mul(Math.sin(t * theta) / s));
}

function merge(taskVectors, ctx) {
  let acc = taskVectors[0];
  for (let i = 1; i < taskVectors.length; i++) acc = slerp(acc, taskVectors[i], i === 1 ? 0.5 : 1 / (i + 1));
  return acc;
}
