/**
 * The merge methods by mergekit name. `getMethod(name)` throws listing the known names.
 */
import type { MergeMethod } from './types.ts';
import { arceeFusion } from './methods/arcee_fusion.ts';
import { breadcrumbs } from './methods/breadcrumbs.ts';
import { breadcrumbsTies } from './methods/breadcrumbs_ties.ts';
import { dareLinear } from './methods/dare_linear.ts';
import { dareTies } from './methods/dare_ties.ts';
import { della } from './methods/della.ts';
import { dellaLinear } from './methods/della_linear.ts';
import { karcher } from './methods/karcher.ts';
import { linear } from './methods/linear.ts';
import { modelStock } from './methods/model_stock.ts';
import { multislerp } from './methods/multislerp.ts';
import { nearswap } from './methods/nearswap.ts';
import { nuslerp } from './methods/nuslerp.ts';
import { passthrough } from './methods/passthrough.ts';
import { ram } from './methods/ram.ts';
import { ramplusTl } from './methods/ramplus_tl.ts';
import { sce } from './methods/sce.ts';
import { slerp } from './methods/slerp.ts';
import { taskArithmetic } from './methods/task_arithmetic.ts';
import { ties } from './methods/ties.ts';

const ALL: MergeMethod[] = [
  linear,
  taskArithmetic,
  ties,
  dareLinear,
  dareTies,
  breadcrumbs,
  breadcrumbsTies,
  della,
  dellaLinear,
  sce,
  ram,
  ramplusTl,
  slerp,
  nuslerp,
  multislerp,
  karcher,
  modelStock,
  nearswap,
  arceeFusion,
  passthrough,
];

export const METHODS: Map<string, MergeMethod> = new Map(ALL.map((m) => [m.name, m]));

/** The method registered under `name` (mergekit's `merge_method` value). */
export function getMethod(name: string): MergeMethod {
  const m = METHODS.get(name);
  if (!m) throw new Error(`unknown merge method '${name}'; known methods: ${[...METHODS.keys()].join(', ')}`);
  return m;
}
