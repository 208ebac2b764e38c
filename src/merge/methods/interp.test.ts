import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MergeTensorInput, ParamValue } from '../types.ts';
import { slerp } from './slerp.ts';
import { nuslerp } from './nuslerp.ts';
import { multislerp } from './multislerp.ts';
import { karcher } from './karcher.ts';
import { randArray, assertClose } from './testing.ts';

function input(
  base: Float32Array | null,
  models: Float32Array[],
  modelParams: Array<Record<string, ParamValue>>,
  params: Record<string, ParamValue>,
  shape: number[],
): MergeTensorInput {
  return { name: 't', shape, base, models, modelParams, params, layer: null, numLayers: 2, seed: 0 };
}
const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const dotp = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

// naive slerp of plain arrays, written from the formula
function refSlerp(t: number, v0: number[], v1: number[], parallelDot = 0.9995, normEps = 1e-8): number[] {
  const n0 = norm(v0);
  const n1 = norm(v1);
  const u0 = n0 > normEps ? v0.map((x) => x / n0) : v0;
  const u1 = n1 > normEps ? v1.map((x) => x / n1) : v1;
  const c = dotp(u0, u1);
  if (Math.abs(c) > parallelDot) return v0.map((x, i) => (1 - t) * x + t * v1[i]!);
  const th = Math.acos(c);
  return v0.map((x, i) => (Math.sin((1 - t) * th) / Math.sin(th)) * x + (Math.sin(t * th) / Math.sin(th)) * v1[i]!);
}

const B = randArray(12, 1);
const W = randArray(12, 2);

test('slerp matches the formula; t=0 → base, t=1 → other; parallel → lerp; orthogonal midpoint', () => {
  for (const t of [0.25, 0.5, 0.9]) assertClose(slerp.merge(input(B, [W], [{}], { t }, [3, 4])), refSlerp(t, [...B], [...W]), 1e-5, `t=${t}`);
  assertClose(slerp.merge(input(B, [W], [{}], { t: 0 }, [12])), B, 1e-6, 't=0');
  assertClose(slerp.merge(input(B, [W], [{}], { t: 1 }, [12])), W, 1e-6, 't=1');
  // near-parallel: v1 = 2·v0 + tiny noise → lerp on the unnormalised tensors
  const near = Float32Array.from(B, (x, i) => 2 * x + (i === 0 ? 1e-4 : 0));
  const got = slerp.merge(input(B, [near], [{}], { t: 0.3 }, [12]));
  assertClose(got, Array.from(B, (x, i) => 0.7 * x + 0.3 * near[i]!), 1e-6, 'lerp fallback');
  // known fact: halfway between orthogonal unit vectors is (1, 1)/√2
  const h = slerp.merge(input(new Float32Array([1, 0]), [new Float32Array([0, 1])], [{}], { t: 0.5 }, [2]));
  assertClose(h, [Math.SQRT1_2, Math.SQRT1_2], 1e-6, 'orthogonal');
  // merging a model with itself returns it
  assertClose(slerp.merge(input(W, [W.slice()], [{}], { t: 0.4 }, [12])), W, 1e-6, 'self');
  assert.throws(() => slerp.merge(input(B, [W, W], [{}, {}], { t: 0.5 }, [12])), /exactly 1 model/);
  assert.throws(() => slerp.merge(input(B, [W], [{}], {}, [12])), /parameter 't' is required/);
});

// naive nuslerp: vectors along the last axis ('rows') or axis 0 ('cols') of a [R, C] matrix
function refNuslerp(t: number, a: number[], b: number[], R: number, C: number, mode: 'flat' | 'rows' | 'cols'): number[] {
  const groups: number[][] = [];
  if (mode === 'flat') groups.push(a.map((_, i) => i));
  else if (mode === 'rows') for (let r = 0; r < R; r++) groups.push(Array.from({ length: C }, (_, c) => r * C + c));
  else for (let c = 0; c < C; c++) groups.push(Array.from({ length: R }, (_, r) => r * C + c));
  const out = new Array<number>(a.length).fill(0);
  for (const g of groups) {
    const va = g.map((i) => a[i]!);
    const vb = g.map((i) => b[i]!);
    const cos = dotp(va, vb) / (Math.max(norm(va), 1e-7) * Math.max(norm(vb), 1e-7));
    const th = Math.acos(Math.min(1, Math.max(-1, cos)));
    g.forEach((idx, j) => {
      out[idx] =
        Math.abs(Math.sin(th)) < 1e-8
          ? (1 - t) * va[j]! + t * vb[j]!
          : (Math.sin((1 - t) * th) * va[j]! + Math.sin(t * th) * vb[j]!) / Math.sin(th);
    });
  }
  return out;
}

test('nuslerp matches the reference: flattened, per row, per column, with and without base', () => {
  const W2 = randArray(12, 3);
  const mp = [{ weight: 1 }, { weight: 3 }]; // t = 0.75
  const modes: Array<['flat' | 'rows' | 'cols', Record<string, ParamValue>]> = [
    ['flat', {}],
    ['rows', { nuslerp_flatten: false }],
    ['cols', { nuslerp_flatten: false, nuslerp_row_wise: true }],
  ];
  for (const [mode, p] of modes) {
    assertClose(nuslerp.merge(input(null, [W, W2], mp, p, [3, 4])), refNuslerp(0.75, [...W], [...W2], 3, 4, mode), 1e-5, mode);
    const da = Array.from(W, (x, i) => x - B[i]!);
    const db = Array.from(W2, (x, i) => x - B[i]!);
    const ref = refNuslerp(0.75, da, db, 3, 4, mode).map((x, i) => x + B[i]!);
    assertClose(nuslerp.merge(input(B, [W, W2], mp, p, [3, 4])), ref, 1e-5, `${mode} with base`);
  }
  // weights summing to ~0 → t = 0.5
  assertClose(nuslerp.merge(input(null, [W, W2], [{ weight: 1 }, { weight: -1 }], {}, [12])), refNuslerp(0.5, [...W], [...W2], 1, 12, 'flat'), 1e-5, 't=0.5');
  // weight 0 on the second model → the first model; same model twice → itself
  assertClose(nuslerp.merge(input(null, [W, W2], [{ weight: 1 }, { weight: 0 }], {}, [12])), W, 1e-6, 'w2=0');
  assertClose(nuslerp.merge(input(B, [W, W.slice()], mp, { nuslerp_flatten: false }, [3, 4])), W, 1e-5, 'self');
  assert.throws(() => nuslerp.merge(input(null, [W], [{ weight: 1 }], {}, [12])), /exactly 2 model/);
});

function refMultislerp(xs: number[][], w: number[], base: number[] | null, eps = 1e-8): number[] {
  const sw = w.reduce((a, b) => a + b, 0);
  const wn = w.map((x) => x / sw);
  const vs = base ? xs.map((x) => x.map((v, i) => v - base[i]!)) : xs;
  const norms = vs.map(norm);
  const units = vs.map((v, k) => v.map((x) => x / (norms[k]! + eps)));
  const mean = units[0]!.map((_, i) => units.reduce((s, u, k) => s + wn[k]! * u[i]!, 0));
  const mhat = mean.map((x) => x / norm(mean));
  const tangents = units.map((u) => {
    const d = dotp(u, mhat);
    return u.map((x, i) => x - d * mhat[i]!);
  });
  const T = mhat.map((_, i) => tangents.reduce((s, tv, k) => s + wn[k]! * tv[i]!, 0));
  const tn = norm(T) + eps;
  const avg = norms.reduce((s, nk, k) => s + wn[k]! * nk, 0);
  return mhat.map((x, i) => (x * Math.cos(tn) + (T[i]! * Math.sin(tn)) / tn) * avg + (base ? base[i]! : 0));
}

test('multislerp matches the reference and known facts', () => {
  const W2 = randArray(12, 4);
  const W3 = randArray(12, 5);
  const w = [0.5, 0.3, 0.2];
  assertClose(multislerp.merge(input(null, [W, W2, W3], w.map((x) => ({ weight: x })), {}, [12])), refMultislerp([[...W], [...W2], [...W3]], w, null), 1e-5, 'no base');
  assertClose(
    multislerp.merge(input(B, [W, W2, W3], w.map((x) => ({ weight: x })), {}, [3, 4])),
    refMultislerp([[...W], [...W2], [...W3]], w, [...B]),
    1e-5,
    'with base',
  );
  // orthogonal unit vectors with equal weights → (1, 1)/√2
  const h = multislerp.merge(input(null, [new Float32Array([1, 0]), new Float32Array([0, 1])], [{ weight: 1 }, { weight: 1 }], {}, [2]));
  assertClose(h, [Math.SQRT1_2, Math.SQRT1_2], 1e-6, 'orthogonal');
  assertClose(multislerp.merge(input(null, [W, W.slice(), W.slice()], w.map((x) => ({ weight: x })), {}, [12])), W, 1e-5, 'self');
  // antipodal with equal weights: two models → linear fallback; three → error
  const a = new Float32Array([1, 2]);
  const na = new Float32Array([-1, -2]);
  assertClose(multislerp.merge(input(null, [a, na], [{ weight: 1 }, { weight: 1 }], {}, [2])), [0, 0], 1e-6, 'fallback');
  assert.throws(() => multislerp.merge(input(null, [a, na, a, na], [1, 1, 1, 1].map((x) => ({ weight: x })), {}, [2])), /weighted sum of the unit tensors is zero/);
});

test('karcher: geodesic mean on a circle, mean-norm scaling, identical models, degenerate inputs', () => {
  // unit vectors at angles 0, 0.2, 1.0 (equal weights): the Karcher mean on a circle is the mean angle 0.4
  const at = (a: number, r = 1) => new Float32Array([r * Math.cos(a), r * Math.sin(a), 0]);
  const got = karcher.merge(input(null, [at(0, 1), at(0.2, 2), at(1.0, 3)], [{}, {}, {}], {}, [3]));
  assertClose(got, at(0.4, 2), 1e-5, 'circle');
  // two vectors: midpoint of the arc
  const two = karcher.merge(input(null, [at(0.1), at(1.3)], [{}, {}], {}, [3]));
  assertClose(two, at(0.7), 1e-5, 'two');
  assertClose(karcher.merge(input(null, [W, W.slice(), W.slice()], [{}, {}, {}], {}, [12])), W, 1e-5, 'self');
  // zero tensors are left out of the direction but count in the mean norm
  const z = karcher.merge(input(null, [at(0.3, 2), new Float32Array(3)], [{}, {}], {}, [3]));
  assertClose(z, at(0.3, 1), 1e-6, 'zero input');
  assertClose(karcher.merge(input(null, [new Float32Array(3), new Float32Array(3)], [{}, {}], {}, [3])), [0, 0, 0], 0, 'all zero');
});
