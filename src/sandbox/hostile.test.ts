/**
 * Hostile-program suite: programs written to escape the sandbox or hurt the host. Every one must
 * be contained, classified with the expected category, and the SAME Sandbox instance must keep
 * serving the next candidate. Host files (a canary in a tmp dir) must stay untouched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from './sandbox.ts';
import type { MergeContext } from './types.ts';

const dir = mkdtempSync(join(tmpdir(), 'selfdev-canary-'));
const CANARY = join(dir, 'canary.txt');
writeFileSync(CANARY, 'untouched');
const canaryMtime = statSync(CANARY).mtimeMs;

type Expect = 'ok' | 'syntax' | 'no-entry-point' | 'runtime' | 'timeout' | 'memory' | 'op-limit' | 'bad-shape' | 'bad-return' | 'non-finite' | 'crash';
const C = JSON.stringify(CANARY);
const HOSTILE: Array<[name: string, expect: Expect, src: string]> = [
  // escapes through constructors, globals and prototype chains
  ['Function constructor via a function', 'runtime', `function merge(tv){ return (function(){}).constructor('return process')().mainModule }`],
  ['Function constructor via a tensor handle', 'runtime', `function merge(tv){ return tv[0].constructor.constructor('return process')() }`],
  ['Function constructor via torch', 'runtime', `function merge(tv){ return torch.add.constructor('return this.process')() }`],
  ['async function constructor', 'runtime', `function merge(tv){ return (async function(){}).constructor('return process')() }`],
  ['this.process', 'runtime', `function merge(tv){ return this.process.binding('fs') }`],
  ['globalThis.process', 'runtime', `function merge(tv){ return globalThis.process.env }`],
  ['require', 'runtime', `function merge(tv){ require('fs').writeFileSync(${C}, 'pwned'); return tv[0] }`],
  ['module/global objects', 'runtime', `function merge(tv){ return global.process || module.require('fs') }`],
  ['prototype chain of an error', 'runtime', `function merge(tv){ try { torch.add(tv[0], {}) } catch (e) { return e.constructor.constructor('return process')() } }`],
  ['prototype chain of the host op error', 'runtime', `function merge(tv){ try { torch.zeros('x') } catch (e) { return Object.getPrototypeOf(e).constructor.constructor('return process')() } }`],
  ['Error.prepareStackTrace frames', 'runtime', `Error.prepareStackTrace = (e, frames) => frames.map((f) => f.getFunction && f.getFunction());
    function merge(tv){ const fns = new Error().stack; for (const f of fns) if (f) return f.constructor('return process')(); throw new Error('no frames') }`],
  ['Proxy passed as a tensor argument', 'runtime', `function merge(tv){ return torch.add(new Proxy(tv[0], {}), 1) }`],
  ['Proxy returned as the result', 'bad-return', `function merge(tv){ return new Proxy(tv[0], {}) }`],
  ['Proxy with looping traps returned', 'timeout', `function merge(tv){ return new Proxy(tv[0], { get(t, k) { for (;;); } }) }`],
  ['getter-laden object returned', 'bad-return', `function merge(tv){ return { get shape() { for (;;); }, get data() { for (;;); } } }`],
  ['Symbol.toPrimitive argument', 'runtime', `function merge(tv){ return torch.mul(tv[0], { [Symbol.toPrimitive]() { for (;;); } }) }`],
  ['valueOf bomb argument', 'runtime', `function merge(tv){ return torch.add(tv[0], { valueOf() { for (;;); } }) }`],
  ['toString bomb in a shape', 'runtime', `function merge(tv){ return torch.zeros([{ toString() { for (;;); } }]) }`],
  ['tensor used as a JS number', 'runtime', `function merge(tv){ return tv[0] + tv[1] }`],
  ['forged tensor via the class', 'runtime', `function merge(tv){ return new (tv[0].constructor)({}, 1, [4, 8]) }`],
  ['forged tensor via the prototype', 'bad-return', `function merge(tv){ return Object.setPrototypeOf({}, Object.getPrototypeOf(tv[0])) }`],
  // exotic throws
  ['throw null', 'runtime', `function merge(tv){ throw null }`],
  ['throw undefined', 'runtime', `function merge(tv){ throw undefined }`],
  ['throw a symbol', 'runtime', `function merge(tv){ throw Symbol('x') }`],
  ['throw an object with throwing getters', 'runtime', `function merge(tv){ throw { get name() { throw new Proxy({}, {}) }, get message() { throw 1 } } }`],
  ['throw a Proxy whose traps loop', 'timeout', `function merge(tv){ throw new Proxy({}, { get() { for (;;); } }) }`],
  ['throw a Proxy whose traps throw', 'runtime', `function merge(tv){ throw new Proxy({}, { get() { throw new Proxy({}, {}) }, getPrototypeOf() { throw 2 } }) }`],
  ['throw at top level', 'runtime', `throw new Proxy({}, { get() { throw 3 } })`],
  ['message getter loops', 'timeout', `function merge(tv){ throw { get message() { for (;;); } } }`],
  // time
  ['infinite loop at top level', 'timeout', `while (true) {}`],
  ['infinite loop in merge', 'timeout', `function merge(tv){ for (;;) {} }`],
  ['busy loop in a microtask', 'timeout', `Promise.resolve().then(() => { for (;;); }); function merge(tv){ return tv[0] }`],
  ['busy loop in a coercion inside merge', 'timeout', `function merge(tv){ const o = { valueOf() { for (;;); } }; return tv[0].mul(+o) }`],
  ['slow host ops in a loop (isolate timeout does not see host time)', 'timeout', `function merge(tv){ const big = torch.rand([150000]); for (;;) { try { big.quantile(0.5) } catch (e) { return tv[0] } } }`],
  ['deep recursion', 'runtime', `function f(n){ return f(n + 1) + 1 } function merge(tv){ return f(0) }`],
  // memory
  ['array memory bomb', 'memory', `function merge(tv){ const a = []; for (;;) a.push(new Array(1 << 16).fill({ x: 1 })) }`],
  ['typed array memory bomb', 'memory', `function merge(tv){ const a = []; for (;;) a.push(new Float64Array(1 << 20)) }`],
  ['string memory bomb', 'memory', `function merge(tv){ let s = 'x'; for (;;) s += s }`],
  ['giant tensor request', 'memory', `function merge(tv){ return torch.zeros([1e9]) }`],
  ['giant tensor with a float shape', 'runtime', `function merge(tv){ return torch.ones([1e9 + 0.5]) }`],
  ['broadcast blow-up', 'memory', `function merge(tv){ return torch.add(torch.ones([2000, 1]), torch.ones([1, 2000])) }`],
  ['stack of many references', 'memory', `function merge(tv){ return torch.stack(new Array(4000).fill(torch.ones([1000]))).sum(0) }`],
  ['allocation loop', 'memory', `function merge(tv){ let x = tv[0]; for (let i = 0; i < 400; i++) x = torch.cat([x, x], 0); return x }`],
  ['op flood', 'op-limit', `function merge(tv){ let x = tv[0]; for (let i = 0; i < 100000; i++) x = torch.add(x, 0); return x }`],
  ['op flood with the error swallowed', 'op-limit', `function merge(tv){ for (;;) { try { torch.abs(1) } catch (e) { return tv[0] } } }`],
  // bad results
  ['wrong shape', 'bad-shape', `function merge(tv){ return tv[0].sum(0) }`],
  ['transposed shape', 'bad-shape', `function merge(tv){ return tv[0].t() }`],
  ['returns a number', 'bad-return', `function merge(tv){ return 0 }`],
  ['returns undefined', 'bad-return', `function merge(tv){ torch.add(tv[0], tv[1]) }`],
  ['returns a promise', 'bad-return', `async function merge(tv){ return tv[0] }`],
  ['returns an array', 'bad-return', `function merge(tv){ return tv }`],
  ['returns the rng', 'bad-return', `function merge(tv, ctx){ return ctx.rng }`],
  ['NaN flood', 'non-finite', `function merge(tv){ return tv[0].mul(NaN) }`],
  ['Inf by division', 'non-finite', `function merge(tv){ return tv[0].div(0) }`],
  ['log of negatives', 'non-finite', `function merge(tv){ return torch.log(tv[1]) }`],
  // forbidden capabilities
  ['dynamic import', 'runtime', `function merge(tv){ return import('node:fs') }`],
  ['eval', 'runtime', `function merge(tv){ return eval('tv[0]') }`],
  ['indirect eval via globalThis', 'runtime', `function merge(tv){ return globalThis['ev' + 'al']('process') }`],
  ['WebAssembly', 'runtime', `function merge(tv){ new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])); return tv[0] }`],
  ['SharedArrayBuffer + Atomics.wait', 'runtime', `function merge(tv){ Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1e9); return tv[0] }`],
  ['Date.now timing', 'runtime', `function merge(tv){ const t = Date.now(); return tv[0].mul(t % 2) }`],
  ['fetch / network', 'runtime', `function merge(tv){ fetch('http://example.com'); return tv[0] }`],
  ['timers', 'runtime', `function merge(tv){ setTimeout(() => {}, 0); return tv[0] }`],
  ['tampering with JSON', 'ok', `JSON.parse = () => ({ t: 1, s: [4, 8] }); JSON.stringify = () => '[]'; function merge(tv){ return torch.add(tv[0], tv[1]) }`],
  ['tampering with Object.prototype.toJSON', 'runtime', `Object.prototype.toJSON = function () { return 'x' }; function merge(tv){ return tv[0] }`],
  // entry points and syntax
  ['no merge function', 'no-entry-point', `function merg(tv){ return tv[0] }`],
  ['merge is not a function', 'no-entry-point', `var merge = 3`],
  ['syntax error', 'syntax', `function merge(tv) {\n  return tv[0].add(\n}`],
  ['oversized source', 'syntax', `// ${'x'.repeat(300000)}\nfunction merge(tv){ return tv[0] }`],
];

const limits = { timeoutMs: 1000, memoryMb: 16, maxOps: 500, maxElements: 1_000_000, wallMs: 4000 };
const ctx: MergeContext = { name: 'model.layers.0.mlp.up_proj.weight', layer: 0, numLayers: 2, kind: 'mlp', shape: [4, 8], numModels: 2, seed: 5 };
const inputs = (): Float32Array[] => [Float32Array.from({ length: 32 }, (_, i) => i / 8 - 2), Float32Array.from({ length: 32 }, (_, i) => -(i % 5) - 0.5)];
const GOOD = 'function merge(tv){ return torch.add(tv[0], tv[1]).mul(0.5) }';

test('hostile suite: every program is contained and classified; the same sandbox keeps going', async () => {
  assert.ok(HOSTILE.length >= 40);
  const sb = new Sandbox({ limits, testHooks: true });
  try {
    const wrong: string[] = [];
    for (const [name, expect, src] of HOSTILE) {
      const r = await sb.run(src, inputs(), ctx);
      const got = r.ok ? 'ok' : r.category;
      if (got !== expect) wrong.push(`${name}: expected ${expect}, got ${got} (${r.message})`);
      assert.ok(r.ok || (typeof r.message === 'string' && r.message.length > 0), `${name}: a rejection needs a message`);
    }
    assert.deepEqual(wrong, []);
    // the sandbox still works, with the same child process (nothing above crashed it)
    const good = await sb.run(GOOD, inputs(), ctx);
    assert.equal(good.ok, true);
    const [a, b] = inputs();
    assert.deepEqual(good.result, Float32Array.from(a!, (x, i) => Math.fround(Math.fround(x + b![i]!) * 0.5)));
    assert.equal(sb.spawns, 1);
  } finally {
    sb.close();
  }
});

test('hostile: CPU-time kill of a hang inside a host op, crash recovery, then business as usual', async () => {
  const sb = new Sandbox({ limits, testHooks: true });
  try {
    // a small CPU kill limit (the parent's kill counts the child's CPU time, so under load it takes longer in wall time)
    const hang = await sb.run('function merge(tv){ torch.__hang() }', inputs(), ctx, { timeoutMs: 200, wallMs: 1200 });
    assert.equal(hang.category, 'timeout');
    assert.match(hang.message!, /CPU time/);
    assert.equal(sb.kills, 1);
    const crash = await sb.run('function merge(tv){ torch.__crash() }', inputs(), ctx);
    assert.equal(crash.category, 'crash');
    const good = await sb.run(GOOD, inputs(), ctx);
    assert.equal(good.ok, true);
    assert.equal(sb.spawns, 3);
    // without test hooks the hooks do not exist
    const sb2 = new Sandbox({ limits });
    try {
      const r = await sb2.run('function merge(tv){ torch.__crash(); return tv[0] }', inputs(), ctx);
      assert.equal(r.category, 'runtime');
    } finally {
      sb2.close();
    }
  } finally {
    sb.close();
  }
});

test('hostile: inputs cannot be mutated, state does not survive between candidates, host files untouched', async () => {
  const sb = new Sandbox({ limits });
  try {
    const orig = inputs();
    const mutate = `function merge(tv){
      try { tv[0].data = new Float32Array(32) } catch (e) {}
      try { tv[0].shape.push(3) } catch (e) {}
      try { tv[0][0] = 99 } catch (e) {}
      try { tv[0].add_(1) } catch (e) {}
      try { tv[0].copy_(tv[1]) } catch (e) {}
      try { Object.defineProperty(tv[0], 'shape', { value: [32] }) } catch (e) {}
      try { torch.add = () => tv[1] } catch (e) {}
      try { tv[0].abs().mul(0); tv[0].clamp(0, 0) } catch (e) {}
      return tv[0]
    }`;
    const r = await sb.run(mutate, orig, ctx);
    assert.equal(r.ok, true, r.message);
    assert.deepEqual(r.result, inputs()[0]);
    assert.deepEqual(orig, inputs());

    const writer = `globalThis.leak = 42; Object.prototype.leak2 = 7; Math.leak3 = 1;
      function merge(tv){ globalThis.leak4 = tv[0]; return tv[0] }`;
    assert.equal((await sb.run(writer, inputs(), ctx)).ok, true);
    const reader = `function merge(tv){
      if (globalThis.leak !== undefined || ({}).leak2 !== undefined || Math.leak3 !== undefined || globalThis.leak4 !== undefined) throw new Error('state leaked');
      return tv[0] }`;
    const rr = await sb.run(reader, inputs(), ctx);
    assert.equal(rr.ok, true, rr.message);

    // Math.random is seeded: same seed → same result, different seed → different
    const rnd = 'function merge(tv, ctx){ return tv[0].mul(Math.random() + ctx.rng.random()) }';
    const r1 = await sb.run(rnd, inputs(), ctx);
    const r2 = await sb.run(rnd, inputs(), ctx);
    const r3 = await sb.run(rnd, inputs(), { ...ctx, seed: 6 });
    assert.deepEqual(r1.result, r2.result);
    assert.notDeepEqual(r1.result, r3.result);
  } finally {
    sb.close();
  }
  assert.equal(readFileSync(CANARY, 'utf8'), 'untouched');
  assert.equal(statSync(CANARY).mtimeMs, canaryMtime);
  assert.deepEqual(readdirSync(dir), ['canary.txt']);
  rmSync(dir, { recursive: true, force: true });
});
