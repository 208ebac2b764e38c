/* global torch */ /* eslint-disable @typescript-eslint/no-unused-vars -- merge/prepare are called by the sandbox */
// Model Breadcrumbs: per task vector keep the middle magnitude band (drop the top GAMMA fraction
// of outliers and the smallest entries so that DENSITY remains), then sum with a weight.
const DENSITY = 0.9;
const GAMMA = 0.01;
const WEIGHT = 0.5;

function merge(taskVectors, ctx) {
  let acc = torch.zeros_like(taskVectors[0]);
  for (const tv of taskVectors) {
    const band = torch.topk_mask(tv, DENSITY + GAMMA).sub(torch.topk_mask(tv, GAMMA));
    acc = acc.add(tv.mul(band));
  }
  return acc.mul(WEIGHT);
}
