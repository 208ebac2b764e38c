/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// TIES: keep the top-density fraction of each task vector by magnitude, elect a sign per entry
// (sign of the sum), average the entries that agree with it, scale by lambda.
const DENSITY = 0.2;
const LAMBDA = 1.0;

function merge(taskVectors, ctx) {
  const trimmed = taskVectors.map((tv) => tv.mul(torch.topk_mask(tv, DENSITY)));
  const total = torch.stack(trimmed).sum(0);
  const elected = torch.where(torch.ge(total, 0), 1, -1);
  let num = torch.zeros_like(total);
  let count = torch.zeros_like(total);
  for (const t of trimmed) {
    const agree = torch.eq(t.sign(), elected);
    num = num.add(t.mul(agree));
    count = count.add(agree);
  }
  return num.div(count.clamp(1, null)).mul(LAMBDA);
}
