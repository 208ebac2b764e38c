/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// Cosine-weighted average using whole-model statistics: prepare() turns each tensor's cosine
// matrix into weights (a task vector that agrees with the others gets more weight); merge()
// reads them from ctx.state.
function prepare(stats) {
  const weights = {};
  for (const name of Object.keys(stats)) {
    const cos = stats[name].cosine;
    const n = cos.length;
    const raw = cos.map((row, i) => {
      let s = 0;
      for (let j = 0; j < n; j++) if (j !== i) s += row[j];
      return Math.max(0, n > 1 ? s / (n - 1) : 1) + 0.1;
    });
    const total = raw.reduce((a, b) => a + b, 0);
    weights[name] = raw.map((w) => w / total);
  }
  return { weights };
}

function merge(taskVectors, ctx) {
  const n = taskVectors.length;
  const w = (ctx.state && ctx.state.weights[ctx.name]) || taskVectors.map(() => 1 / n);
  let acc = torch.zeros_like(taskVectors[0]);
  for (let i = 0; i < n; i++) acc = acc.add(taskVectors[i].mul(w[i]));
  return acc;
}
