/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// Model Stock-like: interpolation ratio t = N*c / (1 + (N-1)*c) from the mean pairwise cosine c
// of the task vectors; merged task vector = t * mean(task vectors).
function merge(taskVectors, ctx) {
  const n = taskVectors.length;
  const avg = torch.stack(taskVectors).mean(0);
  if (n < 2) return avg;
  let total = 0;
  let pairs = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      total += torch.cosine_similarity(taskVectors[i], taskVectors[j]).item();
      pairs++;
    }
  }
  const c = Math.max(0, total / pairs);
  const t = (n * c) / (1 + (n - 1) * c);
  return avg.mul(t);
}
