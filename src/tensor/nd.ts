/**
 * A small float32 n-d array library with PyTorch-like semantics: broadcasting binary ops, unary
 * ops, reductions over dims (with keepdim), quantiles, magnitude top-k masks and seeded random
 * tensors. Every op returns a NEW array; nothing here writes into its inputs. This is the
 * host side of the sandboxed merge-algorithm API (src/sandbox): sandboxed programs only hold
 * handles to these arrays.
 *
 * Split into nd-core.ts (type, pool, broadcasting), nd-elementwise.ts, nd-reduce.ts and
 * nd-shape.ts (shape ops, constructors, random tensors); this module is the public surface.
 */
export { NDArray, setArrayPool, numelOf, checkShape, scalar, fmtShape, broadcastShapes } from './nd-core.ts';
export type { Operand, ArrayPool } from './nd-core.ts';
export type { BinaryFn } from './nd-elementwise.ts';
export { binary, add, sub, mul, div, pow, maximum, minimum, gt, ge, lt, le, eq, where, unary, abs, neg, sign, sqrt, exp, log, sigmoid, tanh, relu, square, clamp } from './nd-elementwise.ts';
export { normDims, sum, mean, variance, std, norm, amax, amin, quantile, topkMask, dot, cosineSimilarity } from './nd-reduce.ts';
export { broadcastTo, stack, cat, reshape, transpose2d, matmul, full, rand, randn, bernoulli } from './nd-shape.ts';
