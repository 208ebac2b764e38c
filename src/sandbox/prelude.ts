/**
 * The JavaScript that runs first inside every fresh isolate: it builds the `torch` API (tensor
 * wrappers holding only an opaque handle), locks the global object down (no eval / Function
 * constructor, no WebAssembly, SharedArrayBuffer, Atomics, Date, WeakRef; Math.random seeded) and
 * returns `{ load, call }`, the only two entry points the host ever calls. Both catch everything
 * the program throws INSIDE the isolate and return plain strings, so no program-controlled value
 * (proxies, getters, exotic throws) ever reaches host code.
 */
export const PRELUDE = String.raw`(function () {
  'use strict';
  const G = globalThis;
  const hostOp = G.__hostOp;
  delete G.__hostOp;
  const ev = G.eval;
  const jparse = JSON.parse;
  const jstringify = JSON.stringify;
  const isArray = Array.isArray;
  const apply = Reflect.apply;
  const strSlice = String.prototype.slice;
  const reExec = RegExp.prototype.exec;
  const StringC = String;
  const NumberC = Number;
  const freeze = Object.freeze;
  const defineProperty = Object.defineProperty;
  const getProto = Object.getPrototypeOf;
  const TypeErr = TypeError;
  const cut = (s, n) => (s.length > n ? apply(strSlice, s, [0, n]) + '...' : s);
  const TOKEN = {};

  class Tensor {
    #id;
    #shape;
    constructor(token, id, shape) {
      if (token !== TOKEN) throw new TypeErr('tensors are created by torch functions, not with new');
      this.#id = id;
      this.#shape = shape;
    }
    static idOf(x) {
      return x !== null && typeof x === 'object' && #id in x ? x.#id : 0;
    }
    get shape() { return this.#shape.slice(); }
    get ndim() { return this.#shape.length; }
    dim() { return this.#shape.length; }
    numel() { let n = 1; for (const d of this.#shape) n *= d; return n; }
    size(d) {
      if (d === undefined) return this.#shape.slice();
      const r = this.#shape.length;
      if (typeof d !== 'number' || d < -r || d >= r) throw new TypeErr('size(): dim ' + StringC(d) + ' out of range');
      return this.#shape[d < 0 ? d + r : d];
    }
    item() { return op('item', [this]); }
    float() { return this; }
    detach() { return this; }
    contiguous() { return this; }
    where(cond, other) { return op('where', [cond, this, other]); }
    toString() { return 'tensor(shape=[' + this.#shape.join(', ') + '])'; }
    valueOf() { throw new TypeErr('a tensor cannot be used as a JS number (did you write a + b on tensors?); use torch.add(a, b), or t.item() for a 1-element tensor'); }
    [Symbol.toPrimitive](hint) { return hint === 'string' ? this.toString() : this.valueOf(); }
  }
  const idOf = Tensor.idOf;

  function enc(x, depth) {
    const t = typeof x;
    if (t === 'number') return x === x && x !== Infinity && x !== -Infinity ? x : { $n: StringC(x) };
    if (x === null || x === undefined) return null;
    if (t === 'boolean' || t === 'string') return x;
    if (t === 'object') {
      const id = idOf(x);
      if (id) return { $t: id };
      if (isArray(x) && depth < 3) {
        const n = x.length;
        if (!(n <= 4096)) throw new TypeErr('lists passed to torch may have at most 4096 entries');
        const out = [];
        for (let i = 0; i < n; i++) out.push(enc(x[i], depth + 1));
        return out;
      }
    }
    throw new TypeErr('torch arguments must be tensors, numbers, booleans, null, or lists of them; got ' + (t === 'object' ? 'an object' : t));
  }
  function op(name, args) {
    const a = [];
    for (let i = 0; i < args.length; i++) a.push(enc(args[i], 0));
    const r = jparse(hostOp(name, jstringify(a)));
    if (r.t !== undefined) return new Tensor(TOKEN, r.t, freeze(r.s));
    return typeof r.n === 'string' ? NumberC(r.n) : r.n;
  }

  const torch = {};
  const names = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'gt', 'ge', 'lt', 'le', 'eq', 'where', 'clamp',
    'abs', 'neg', 'sign', 'sqrt', 'exp', 'log', 'sigmoid', 'tanh', 'relu', 'square',
    'sum', 'mean', 'std', 'var', 'amax', 'amin', 'max', 'min', 'norm', 'quantile', 'topk_mask', 'cosine_similarity',
    'dot', 'matmul', 'stack', 'cat', 'reshape', 'flatten', 'unsqueeze', 'squeeze', 't', 'broadcast_to', 'expand_as', 'clone',
    'zeros_like', 'ones_like', 'full_like', 'rand_like', 'randn_like', 'bernoulli', 'tensor', '__hang', '__crash'];
  for (const n of names) torch[n] = function (...args) { return op(n, args); };
  torch.clip = torch.clamp;
  torch.multiply = torch.mul;
  torch.subtract = torch.sub;
  torch.divide = torch.div;
  torch.concat = torch.cat;
  torch.full = function (shape, value) { return op('full', [shape, value]); };
  for (const n of ['zeros', 'ones', 'rand', 'randn'])
    torch[n] = function (...args) { return op(n, [isArray(args[0]) ? args[0] : args]); };
  torch.is_tensor = (x) => idOf(x) !== 0;
  freeze(torch);

  const methods = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'gt', 'ge', 'lt', 'le', 'eq', 'clamp', 'clip',
    'abs', 'neg', 'sign', 'sqrt', 'exp', 'log', 'sigmoid', 'tanh', 'relu', 'square',
    'sum', 'mean', 'std', 'var', 'amax', 'amin', 'max', 'min', 'norm', 'quantile', 'topk_mask', 'cosine_similarity',
    'dot', 'matmul', 'reshape', 'flatten', 'unsqueeze', 'squeeze', 't', 'broadcast_to', 'expand_as', 'clone',
    'zeros_like', 'ones_like', 'full_like', 'rand_like', 'randn_like', 'bernoulli'];
  for (const n of methods) {
    const f = torch[n];
    defineProperty(Tensor.prototype, n, { value: function (...args) { return f(this, ...args); }, writable: false, configurable: false });
  }
  defineProperty(Tensor.prototype, 'view', { value: Tensor.prototype.reshape });
  defineProperty(Tensor.prototype, 'multiply', { value: Tensor.prototype.mul });
  defineProperty(Tensor.prototype, 'subtract', { value: Tensor.prototype.sub });
  freeze(Tensor.prototype);

  // seeded generator (mulberry32); replaced per call by makeRng(seed)
  function makeRng(seed) {
    let a = seed >>> 0;
    const random = function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    return freeze({ random });
  }

  // lock down the global object
  const disabled = function () { throw new EvalError('code generation from strings (eval, Function) is disabled in the merge sandbox'); };
  for (const f of [function () {}, async function () {}, function* () {}, async function* () {}])
    defineProperty(getProto(f), 'constructor', { value: disabled, writable: false, configurable: false });
  for (const n of ['eval', 'Function', 'WebAssembly', 'SharedArrayBuffer', 'Atomics', 'Date', 'WeakRef', 'FinalizationRegistry'])
    delete G[n];
  let mathRng = makeRng(0);
  defineProperty(Math, 'random', { value: function () { return mathRng.random(); }, writable: false, configurable: false });
  defineProperty(G, 'torch', { value: torch, writable: false, configurable: false, enumerable: true });

  function describe(e) {
    try {
      if (e === null) return 'threw null';
      if (e === undefined) return 'threw undefined';
      const t = typeof e;
      if (t === 'symbol') return 'threw a symbol';
      if (t !== 'object' && t !== 'function') return cut('threw a ' + t + ': ' + StringC(e), 300);
      let name = 'Error';
      let msg = '';
      let where = '';
      try { name = StringC(e.name); } catch (_) { /* exotic */ }
      try { msg = StringC(e.message); } catch (_) { msg = '(unreadable message)'; }
      try {
        const m = apply(reExec, /<anonymous>:(\d+):(\d+)/, [StringC(e.stack)]);
        if (m) where = ' (at line ' + m[1] + ':' + m[2] + ')';
      } catch (_) { /* no stack */ }
      return cut(name + ': ' + msg, 500) + where;
    } catch (_) {
      return 'threw an unprintable value';
    }
  }
  function safe(kind, message) {
    try { return jstringify({ kind: kind, message: message }); } catch (_) { return '{"kind":"error","message":"unprintable"}'; }
  }
  function what(r) {
    try {
      if (r === null) return 'null';
      if (r === undefined) return 'undefined (did you forget return?)';
      if (isArray(r)) return 'an array (return a single tensor, e.g. torch.stack(list).sum(0))';
      if (typeof r === 'object' && typeof r.then === 'function') return 'a Promise (merge must be synchronous: no async/await)';
      if (typeof r === 'number') return 'a number (return a tensor of the input shape, e.g. torch.full_like(taskVectors[0], x))';
      return 'a ' + typeof r;
    } catch (_) {
      return 'an exotic object';
    }
  }

  function load(src) {
    try {
      ev(src);
      return '{"kind":"ok"}';
    } catch (e) {
      return safe('error', describe(e));
    }
  }
  function call(json) {
    try {
      const req = jparse(json);
      const fn = G[req.entry];
      if (typeof fn !== 'function') return safe('no-entry', typeof fn);
      if (req.entry === 'prepare') {
        mathRng = makeRng(req.seed);
        const r = fn(req.stats, freeze({ numModels: req.numModels, rng: makeRng(req.seed) }));
        let s;
        try { s = jstringify(r); } catch (e) { return safe('bad-return', 'prepare must return plain JSON data (' + describe(e) + ')'); }
        return jstringify({ kind: 'json', json: s === undefined ? 'null' : s });
      }
      const c = req.ctx;
      mathRng = makeRng(c.seed ^ 0x5bd1e995);
      c.rng = makeRng(c.seed);
      c.shape = freeze(c.shape);
      const tvs = [];
      for (let i = 0; i < req.ids.length; i++) tvs.push(new Tensor(TOKEN, req.ids[i], freeze(req.shapes[i])));
      const r = fn(tvs, c);
      const id = idOf(r);
      if (id) return jstringify({ kind: 'tensor', id: id });
      return safe('bad-return', 'merge returned ' + what(r) + ' instead of a tensor');
    } catch (e) {
      return safe('error', describe(e));
    }
  }
  return { load: load, call: call };
})()`;
