/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// DELLA-like: keep probability grows with an entry's magnitude inside its row,
// p = (DENSITY - EPS) + 2*EPS*r with r = |x| / max|x| of the row; survivors are divided by p;
// then TIES-style sign election and averaging of the agreeing entries.
const DENSITY = 0.6;
const EPS = 0.15;

function merge(taskVectors, ctx) {
  const pruned = taskVectors.map((tv) => {
    const mag = tv.abs();
    const r = mag.div(mag.amax(-1, true).add(1e-12));
    const p = r.mul(2 * EPS).add(DENSITY - EPS);
    return tv.mul(torch.bernoulli(p)).div(p);
  });
  const elected = torch.where(torch.ge(torch.stack(pruned).sum(0), 0), 1, -1);
  let num = torch.zeros_like(elected);
  let count = torch.zeros_like(elected);
  for (const t of pruned) {
    const agree = torch.eq(t.sign(), elected);
    num = num.add(t.mul(agree));
    count = count.add(agree);
  }
  return num.div(count.clamp(1, null));
}
