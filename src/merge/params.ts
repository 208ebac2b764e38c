/**
 * Parameter values per tensor, with mergekit's rules:
 * - a filter list [{filter, value}] picks the first entry whose filter is absent, `*`, a
 *   substring of the tensor name, or a /regex/ matching it (the syntax of include_tensors);
 * - a gradient (list of numbers) is interpolated linearly at t = layer / (numLayers − 1)
 *   (t = 1 with one layer); tensors outside the layers (embeddings, final norm, lm_head) use t = 0;
 * - a model's own `parameters` win over the global block, which wins over the method default.
 */
import { matchesPattern, type RawValue } from './config.ts';
import type { ParamRange, ParamSpec, ParamValue } from './types.ts';

const LAYER_RE = /(?:^|\.)layers\.(\d+)\./;

/** The layer index in a tensor name (`model.layers.12.mlp...` → 12), or null. */
export function layerOf(name: string): number | null {
  const m = LAYER_RE.exec(name);
  return m ? Number(m[1]) : null;
}

export function gradientAt(values: number[], layer: number | null, numLayers: number): number {
  if (values.length === 1) return values[0]!;
  const t = layer === null ? 0 : numLayers <= 1 ? 1 : layer / (numLayers - 1);
  const s = t * (values.length - 1);
  const i = Math.min(Math.floor(s), values.length - 1);
  if (i >= values.length - 1) return values[values.length - 1]!;
  const frac = s - i;
  return values[i]! * (1 - frac) + values[i + 1]! * frac;
}

/** Evaluates a raw value for one tensor; undefined when a filter list has no matching entry. */
export function evaluate(raw: RawValue, name: string, layer: number | null, numLayers: number): ParamValue | undefined {
  if (typeof raw === 'number' || typeof raw === 'boolean') return raw;
  if (raw.length > 0 && typeof raw[0] === 'number') return gradientAt(raw as number[], layer, numLayers);
  for (const e of raw as Array<{ filter?: string; value: number | boolean | number[] }>) {
    if (e.filter === undefined || matchesPattern(name, e.filter)) {
      return typeof e.value === 'object' ? gradientAt(e.value, layer, numLayers) : e.value;
    }
  }
  return undefined;
}

/** A range as text: "(0, 1]", "[0, 1)", "≥ 0", "> 0", with "an integer" when it must be one. */
export function describeRange(r: ParamRange): string {
  let s: string;
  if (r.min !== undefined && r.max !== undefined) s = `in ${r.minExclusive ? '(' : '['}${r.min}, ${r.max}${r.maxExclusive ? ')' : ']'}`;
  else if (r.min !== undefined) s = `${r.minExclusive ? '>' : '≥'} ${r.min}`;
  else if (r.max !== undefined) s = `${r.maxExclusive ? '<' : '≤'} ${r.max}`;
  else s = 'a number';
  return r.integer ? `an integer ${s}` : s;
}

/** Throws unless `v` lies in the parameter's range (the message states the range). */
export function checkParamRange(spec: ParamSpec, v: number, where: string): void {
  const r = spec.range;
  if (!r) return;
  const ok =
    (r.min === undefined || (r.minExclusive ? v > r.min : v >= r.min)) &&
    (r.max === undefined || (r.maxExclusive ? v < r.max : v <= r.max)) &&
    (!r.integer || Number.isInteger(v));
  if (!ok) throw new Error(`${where}: parameter '${spec.name}' must be ${describeRange(r)}, got ${v}`);
}

function coerce(spec: ParamSpec, v: ParamValue, where: string): ParamValue {
  if (spec.type === 'boolean') {
    if (typeof v === 'boolean') return v;
    if (v === 0 || v === 1) return v === 1;
    throw new Error(`${where}: parameter '${spec.name}' must be true or false, got ${v}`);
  }
  if (typeof v !== 'number') throw new Error(`${where}: parameter '${spec.name}' must be a number, got ${v}`);
  checkParamRange(spec, v, where);
  return v;
}

/**
 * Resolves the parameters of `specs` for one tensor. `own` is the model's block (null for global
 * parameters), `global` the config's global block.
 */
export function resolveParams(
  specs: ParamSpec[],
  own: Record<string, RawValue> | null,
  global: Record<string, RawValue>,
  name: string,
  layer: number | null,
  numLayers: number,
  where: string,
): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const spec of specs) {
    let v: ParamValue | undefined;
    if (own && spec.name in own) v = evaluate(own[spec.name]!, name, layer, numLayers);
    if (v === undefined && spec.name in global) v = evaluate(global[spec.name]!, name, layer, numLayers);
    if (v === undefined) v = spec.default;
    if (v === undefined) {
      if (spec.required) throw new Error(`${where}: parameter '${spec.name}' has no value for tensor ${name}`);
      continue;
    }
    out[spec.name] = coerce(spec, v, where);
  }
  return out;
}

/** A stable 32-bit seed for one tensor of a run (FNV-1a of the name, mixed with the run seed). */
export function tensorSeed(runSeed: number, name: string): number {
  let h = 0x811c9dc5 ^ (runSeed >>> 0);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= Math.floor(runSeed / 4294967296);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39);
  return (h ^ (h >>> 15)) >>> 0;
}
