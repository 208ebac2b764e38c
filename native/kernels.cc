// selfdev_native: N-API entry points and orchestration (threads, tiling, top-k selection, the fused
// generalized-task-arithmetic merge). The exact semantics of every function are those of the JS
// reference implementations in src/tensor/kernels.ts and src/tensor/dtype.ts; see there.
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels.h"
#include "napi_util.h"
#include "pool.h"

namespace sd {

static int g_threads = 2;
static const Leaf* g_leaf = &leaf_base;
static bool g_has_avx2 = false;
// Arrays shorter than this run on the calling thread only.
static size_t g_par_min = 1u << 18;
// Reductions sum fixed blocks in index order, so results do not depend on the thread count.
static const size_t BLOCK = 1u << 16;
static const size_t TILE = 256;
// scratch tiles are laid out STRIDE floats apart (padding against 4K-aliasing between streams)
static const size_t STRIDE = TILE + 16;
static_assert(BLOCK % TILE == 0 && TILE % 64 == 0, "tiles must stay byte-aligned in bit masks");

using napi::Err;
using napi::guarded;

// ---------------------------------------------------------------- threading helpers

static int threads_for(size_t n) {
  if (n < g_par_min || g_threads <= 1) return 1;
  size_t blocks = (n + BLOCK - 1) / BLOCK;
  return static_cast<int>(std::min<size_t>(static_cast<size_t>(g_threads), blocks));
}

int kernel_threads(size_t n) { return threads_for(n); }  // for nd_ops.cc
const Leaf* kernel_leaf() { return g_leaf; }               // for nd_ops.cc

// f(begin, end) over contiguous element ranges, boundaries multiples of 64 elements.
template <class F>
static void par_range(size_t n, F f) {
  int nt = threads_for(n);
  if (nt <= 1) {
    f(size_t(0), n);
    return;
  }
  std::function<void(int)> job = [&](int t) {
    size_t b = (n * static_cast<size_t>(t) / nt) & ~size_t(63);
    size_t e = t + 1 == nt ? n : ((n * static_cast<size_t>(t + 1) / nt) & ~size_t(63));
    if (b < e) f(b, e);
  };
  Pool::get().run(nt, job);
}

// f(block_index, begin, end) for each fixed BLOCK; blocks are split into contiguous groups per thread.
template <class F>
static void par_blocks(size_t n, F f) {
  size_t nb = (n + BLOCK - 1) / BLOCK;
  int nt = threads_for(n);
  auto body = [&](size_t b0, size_t b1) {
    for (size_t bi = b0; bi < b1; bi++) f(bi, bi * BLOCK, std::min(n, (bi + 1) * BLOCK));
  };
  if (nt <= 1) {
    body(0, nb);
    return;
  }
  std::function<void(int)> job = [&](int t) { body(nb * t / nt, nb * (t + 1) / nt); };
  Pool::get().run(nt, job);
}

// ---------------------------------------------------------------- typed views

struct View {
  void* p = nullptr;
  size_t n = 0;  // elements of dtype dt
  int dt = DT_F32;
};

static void decode_tile(const View& v, size_t start, size_t len, float* dst) {
  switch (v.dt) {
    case DT_F32:
      std::memcpy(dst, static_cast<const float*>(v.p) + start, len * 4);
      break;
    case DT_BF16:
      g_leaf->cvt_bf16_f32(static_cast<const uint16_t*>(v.p) + start, dst, len);
      break;
    default:
      g_leaf->cvt_f16_f32(static_cast<const uint16_t*>(v.p) + start, dst, len);
      break;
  }
}

// Pointer to float values of v[start, start+len): direct for F32, else decoded into buf.
static const float* tile_ptr(const View& v, size_t start, size_t len, float* buf) {
  if (v.dt == DT_F32) return static_cast<const float*>(v.p) + start;
  decode_tile(v, start, len, buf);
  return buf;
}

static void encode_tile(const float* src, const View& v, size_t start, size_t len) {
  switch (v.dt) {
    case DT_F32:
      std::memcpy(static_cast<float*>(v.p) + start, src, len * 4);
      break;
    case DT_BF16:
      g_leaf->cvt_f32_bf16(src, static_cast<uint16_t*>(v.p) + start, len);
      break;
    default:
      g_leaf->cvt_f32_f16(src, static_cast<uint16_t*>(v.p) + start, len);
      break;
  }
}

// ---------------------------------------------------------------- exact top-k by magnitude

static inline uint32_t keyof(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u & 0x7fffffffu;
}
static const uint32_t KEY_INF = 0x7f800000u;
static const int HBITS = 12;  // first radix pass: top 12 bits of the 31-bit key (a 16 KB histogram)
static const int HSHIFT = 31 - HBITS;
static const size_t HBINS = size_t(1) << HBITS;

struct TopK {
  bool keep_all = false;  // k >= n: everything (NaN included) is kept
  uint32_t thr = 0xffffffffu;
  int64_t cut = -1;  // entries with key == thr are kept iff index <= cut
};

static inline bool topk_keep(const TopK& t, float v, int64_t idx) {
  if (t.keep_all) return true;
  uint32_t key = keyof(v);
  return (key > t.thr && key <= KEY_INF) || (key == t.thr && idx <= t.cut);
}

// Values of model j over [s, s+len): x_j - base (or x_j without base). xb: TILE floats scratch.
struct Sources {
  const View* base = nullptr;
  std::vector<const View*> xs;
};

template <class F>
static void run_threads(int nt, F f) {
  std::function<void(int)> job = f;
  Pool::get().run(nt, job);
}

// Exact top-k of |values| for every source: the k largest non-NaN magnitudes, ties by lower
// index; NaN never selected. Pass 1: per-thread histograms of the top 12 key bits (key = float
// bits of |v|, monotone for non-NaN values). Pass 2: collect (index, key) of the entries in the
// boundary bucket (in index order). Then nth_element on the candidate keys and one scan for the
// tie cut. Linear time; independent of the thread count.
static std::vector<TopK> select_topk(const Sources& src, size_t n, int64_t k) {
  const size_t m = src.xs.size();
  std::vector<TopK> res(m);
  if (k >= static_cast<int64_t>(n)) {
    for (auto& r : res) r.keep_all = true;
    return res;
  }
  if (k <= 0) return res;  // thr = 0xffffffff matches nothing
  const int nt = threads_for(n);
  const size_t nb = (n + BLOCK - 1) / BLOCK;
  auto tile_loop = [&](int t, auto per_value) {
    std::vector<float> bb(TILE), xb(TILE);
    for (size_t bi = nb * t / nt; bi < nb * (t + 1) / nt; bi++) {
      size_t e = std::min(n, (bi + 1) * BLOCK);
      for (size_t s = bi * BLOCK; s < e; s += TILE) {
        size_t len = std::min(TILE, e - s);
        const float* bp = src.base ? tile_ptr(*src.base, s, len, bb.data()) : nullptr;
        for (size_t j = 0; j < m; j++) {
          const float* v;
          if (bp) {
            decode_tile(*src.xs[j], s, len, xb.data());
            g_leaf->sub_inplace(xb.data(), bp, len);
            v = xb.data();
          } else {
            v = tile_ptr(*src.xs[j], s, len, xb.data());
          }
          per_value(j, s, v, len);
        }
      }
    }
  };
  // pass 1
  std::vector<uint32_t> hist(static_cast<size_t>(nt) * m * HBINS, 0);
  run_threads(nt, [&](int t) {
    // two interleaved histograms halve the store-to-load stalls on runs of equal buckets; NaN
    // keys (> KEY_INF) land in an extra bin that is dropped
    std::vector<uint32_t> hh(m * 2 * (HBINS + 1), 0);
    tile_loop(t, [&](size_t j, size_t, const float* v, size_t len) {
      uint32_t* ha = hh.data() + j * 2 * (HBINS + 1);
      uint32_t* hb2 = ha + HBINS + 1;
      size_t i = 0;
      for (; i + 2 <= len; i += 2) {
        uint32_t k0 = keyof(v[i]), k1 = keyof(v[i + 1]);
        ha[k0 > KEY_INF ? HBINS : k0 >> HSHIFT]++;
        hb2[k1 > KEY_INF ? HBINS : k1 >> HSHIFT]++;
      }
      if (i < len) {
        uint32_t k0 = keyof(v[i]);
        ha[k0 > KEY_INF ? HBINS : k0 >> HSHIFT]++;
      }
    });
    uint32_t* h0 = hist.data() + static_cast<size_t>(t) * m * HBINS;
    for (size_t j = 0; j < m; j++)
      for (size_t b = 0; b < HBINS; b++)
        h0[j * HBINS + b] = hh[j * 2 * (HBINS + 1) + b] + hh[j * 2 * (HBINS + 1) + HBINS + 1 + b];
  });
  std::vector<uint32_t> hb(m, 0);
  std::vector<uint64_t> above(m, 0);
  std::vector<char> active(m, 0);
  std::vector<uint64_t> ncand(m, 0);
  for (size_t j = 0; j < m; j++) {
    std::vector<uint64_t> h(HBINS, 0);
    uint64_t valid = 0;
    for (int t = 0; t < nt; t++)
      for (size_t b = 0; b < HBINS; b++) h[b] += hist[(static_cast<size_t>(t) * m + j) * HBINS + b];
    for (size_t b = 0; b < HBINS; b++) valid += h[b];
    if (static_cast<uint64_t>(k) >= valid) {  // keep every non-NaN entry
      res[j].thr = 0;
      res[j].cut = static_cast<int64_t>(n);
      continue;
    }
    uint64_t ab = 0;
    size_t b = HBINS - 1;
    for (;; b--) {
      if (ab + h[b] >= static_cast<uint64_t>(k)) break;
      ab += h[b];
    }
    hb[j] = static_cast<uint32_t>(b);
    above[j] = ab;
    active[j] = 1;
    uint64_t o = 0;
    for (int t = 0; t < nt; t++) o += hist[(static_cast<size_t>(t) * m + j) * HBINS + b];
    ncand[j] = o;
  }
  bool any = false;
  for (size_t j = 0; j < m; j++) any = any || active[j];
  if (!any) return res;
  // pass 2: candidates of the boundary bucket, per thread (thread order = index order)
  std::vector<std::vector<uint32_t>> tidx(static_cast<size_t>(nt) * m), tkey(static_cast<size_t>(nt) * m);
  std::vector<uint64_t> tcount(static_cast<size_t>(nt) * m, 0);
  run_threads(nt, [&](int t) {
    for (size_t j = 0; j < m; j++)
      if (active[j]) {
        size_t cnt = hist[(static_cast<size_t>(t) * m + j) * HBINS + hb[j]];
        tidx[static_cast<size_t>(t) * m + j].resize(cnt);
        tkey[static_cast<size_t>(t) * m + j].resize(cnt);
      }
    tile_loop(t, [&](size_t j, size_t s, const float* v, size_t len) {
      if (!active[j]) return;
      const uint32_t lo = hb[j] << HSHIFT;
      const uint32_t hi = std::min<uint32_t>((hb[j] + 1) << HSHIFT, KEY_INF + 1);  // NaN keys excluded
      const size_t slot = static_cast<size_t>(t) * m + j;
      uint64_t p = tcount[slot];
      p += g_leaf->collect(v, len, static_cast<uint32_t>(s), lo, hi, tidx[slot].data() + p, tkey[slot].data() + p);
      tcount[slot] = p;
    });
  });
  std::vector<std::vector<uint32_t>> cidx(m), ckey(m);
  for (size_t j = 0; j < m; j++) {
    if (!active[j]) continue;
    cidx[j].reserve(ncand[j]);
    ckey[j].reserve(ncand[j]);
    for (int t = 0; t < nt; t++) {
      const size_t slot = static_cast<size_t>(t) * m + j;
      cidx[j].insert(cidx[j].end(), tidx[slot].begin(), tidx[slot].begin() + static_cast<ptrdiff_t>(tcount[slot]));
      ckey[j].insert(ckey[j].end(), tkey[slot].begin(), tkey[slot].begin() + static_cast<ptrdiff_t>(tcount[slot]));
    }
  }
  for (size_t j = 0; j < m; j++) {
    if (!active[j]) continue;
    uint64_t need = static_cast<uint64_t>(k) - above[j];  // 1..ncand
    std::vector<uint32_t> keys(ckey[j]);
    std::nth_element(keys.begin(), keys.begin() + static_cast<ptrdiff_t>(need - 1), keys.end(), std::greater<uint32_t>());
    uint32_t thr = keys[need - 1];
    uint64_t greater = 0;
    for (uint32_t key : ckey[j]) greater += key > thr;
    uint64_t budget = need - greater;  // >= 1
    int64_t cut = -1;
    for (size_t c = 0; c < ckey[j].size(); c++)
      if (ckey[j][c] == thr && --budget == 0) {
        cut = cidx[j][c];
        break;
      }
    res[j].thr = thr;
    res[j].cut = cut;
  }
  return res;
}

// ---------------------------------------------------------------- fused generalized task arithmetic

enum Sparsify { SP_NONE = 0, SP_MAGNITUDE = 1, SP_RANDOM = 2 };

struct Gta {
  View out;
  bool has_base = false;
  View base;
  std::vector<View> models;
  std::vector<float> w;
  int sparsify = SP_NONE;
  int64_t k = 0;
  uint32_t c = 0;
  std::vector<uint32_t> seeds;
  bool consensus = false, normalize = false, rescale = false;
  float lambda = 1.0f;
  size_t n = 0;
};

static void gta_run(const Gta& g) {
  const size_t n = g.n, m = g.models.size();
  std::vector<TopK> tk(m);
  std::vector<float> r(m, 1.0f);
  if (g.sparsify == SP_MAGNITUDE) {
    Sources src;
    src.base = g.has_base ? &g.base : nullptr;
    for (auto& v : g.models) src.xs.push_back(&v);
    tk = select_topk(src, n, g.k);
  }
  // random + rescale: the keep bits computed in the rescale pass are reused by the final pass
  std::vector<std::vector<uint8_t>> bits;
  if (g.rescale && g.sparsify == SP_RANDOM) bits.assign(m, std::vector<uint8_t>((n + 7) / 8));
  if (g.rescale && g.sparsify != SP_NONE) {
    // Σ|δ| and Σ|kept δ| per model: per-tile 8-lane sums, fixed blocks summed in order
    size_t nb = (n + BLOCK - 1) / BLOCK;
    std::vector<double> pa(nb * m, 0.0), pk(nb * m, 0.0);
    par_blocks(n, [&](size_t bi, size_t b, size_t e) {
      std::vector<float> bb(TILE), xb(TILE), kept(TILE);
      for (size_t s = b; s < e; s += TILE) {
        size_t len = std::min(TILE, e - s);
        const float* bp = g.has_base ? tile_ptr(g.base, s, len, bb.data()) : nullptr;
        for (size_t j = 0; j < m; j++) {
          const float* v;
          if (bp) {
            decode_tile(g.models[j], s, len, xb.data());
            g_leaf->sub_inplace(xb.data(), bp, len);
            v = xb.data();
          } else {
            v = tile_ptr(g.models[j], s, len, xb.data());
          }
          if (g.sparsify == SP_RANDOM) {
            uint8_t* bj = bits[j].data() + s / 8;  // s is a multiple of 8 (tiles inside blocks)
            g_leaf->bern_bits(len, static_cast<uint32_t>(s), g.seeds[j], g.c, bj);
            g_leaf->apply_bits(v, bj, kept.data(), len);
          } else {
            std::memcpy(kept.data(), v, len * 4);
            if (!tk[j].keep_all) g_leaf->topk_apply(kept.data(), len, static_cast<int64_t>(s), tk[j].thr, tk[j].cut);
          }
          pa[bi * m + j] += g_leaf->red_l1(v, len);
          pk[bi * m + j] += g_leaf->red_l1(kept.data(), len);
        }
      }
    });
    for (size_t j = 0; j < m; j++) {
      double a = 0, kk = 0;
      for (size_t bi = 0; bi < nb; bi++) {
        a += pa[bi * m + j];
        kk += pk[bi * m + j];
      }
      r[j] = (a < 1e-7 || kk < 1e-7) ? 1.0f : static_cast<float>(a / kk);
    }
  }
  float wsum = 0.0f;
  for (size_t j = 0; j < m; j++) wsum = wsum + g.w[j];
  const float dnone = std::fabs(static_cast<double>(wsum)) < 1e-8 ? 1.0f : wsum;
  par_range(n, [&](size_t b, size_t e) {
    std::vector<float> mem((5 + m) * STRIDE);
    float* bt = mem.data();
    float* S = bt + STRIDE;
    float* M = S + STRIDE;
    float* D = M + STRIDE;
    float* res = D + STRIDE;
    float* wd = res + STRIDE;  // m tiles
    for (size_t s = b; s < e; s += TILE) {
      size_t len = std::min(TILE, e - s);
      const float* bp = g.has_base ? tile_ptr(g.base, s, len, bt) : nullptr;
      for (size_t j = 0; j < m; j++) {
        float* d = wd + j * STRIDE;
        decode_tile(g.models[j], s, len, d);
        if (bp) g_leaf->sub_inplace(d, bp, len);
        if (g.sparsify == SP_MAGNITUDE) {
          if (!tk[j].keep_all) g_leaf->topk_apply(d, len, static_cast<int64_t>(s), tk[j].thr, tk[j].cut);
        } else if (g.sparsify == SP_RANDOM) {
          if (!bits.empty())  // s is a multiple of 8: range starts are multiples of 64
            g_leaf->apply_bits(d, bits[j].data() + s / 8, d, len);
          else
            g_leaf->bern(d, d, len, static_cast<uint32_t>(s), g.seeds[j], g.c);
        }
      }
      g_leaf->combine(wd, STRIDE, m, g.w.data(), r.data(), bp, S, M, D, res, len, g.consensus, g.normalize, dnone,
                      g.lambda);
      encode_tile(res, g.out, s, len);
    }
  });
}

// ---------------------------------------------------------------- N-API glue

#define NAPI_OK(call)                                    \
  do {                                                   \
    if ((call) != napi_ok) throw Err{"napi call failed: " #call}; \
  } while (0)

struct Args {
  napi_env env;
  std::vector<napi_value> v;
  Args(napi_env e, napi_callback_info info, size_t want) : env(e), v(want) {
    size_t argc = want;
    NAPI_OK(napi_get_cb_info(e, info, &argc, v.data(), nullptr, nullptr));
    if (argc < want) throw Err{"expected " + std::to_string(want) + " arguments"};
  }
  double num(size_t i) const {
    double d;
    if (napi_get_value_double(env, v[i], &d) != napi_ok) throw Err{"argument " + std::to_string(i) + " must be a number"};
    return d;
  }
  bool is_null(size_t i) const {
    napi_valuetype t;
    NAPI_OK(napi_typeof(env, v[i], &t));
    return t == napi_null || t == napi_undefined;
  }
};

// element size of the view's dtype; the typed array must be F32 (Float32Array) or bytes
static View view_of(napi_env env, napi_value val, int dt, const char* what) {
  bool is_ta = false;
  NAPI_OK(napi_is_typedarray(env, val, &is_ta));
  if (!is_ta) throw Err{std::string(what) + ": expected a typed array"};
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value ab;
  size_t off;
  NAPI_OK(napi_get_typedarray_info(env, val, &type, &length, &data, &ab, &off));
  size_t bytes;
  switch (type) {
    case napi_float32_array:
      bytes = length * 4;
      break;
    case napi_uint8_array:
    case napi_int8_array:
    case napi_uint8_clamped_array:
      bytes = length;
      break;
    case napi_uint16_array:
    case napi_int16_array:
      bytes = length * 2;
      break;
    default:
      throw Err{std::string(what) + ": unsupported typed array type"};
  }
  if (dt < 0 || dt > 2) throw Err{std::string(what) + ": bad dtype code"};
  View v;
  v.p = data;
  v.dt = dt;
  size_t es = dt == DT_F32 ? 4 : 2;
  if (bytes % es) throw Err{std::string(what) + ": byte length not a multiple of the element size"};
  if (reinterpret_cast<uintptr_t>(data) % es) throw Err{std::string(what) + ": data not aligned to its element size"};
  v.n = bytes / es;
  return v;
}

static float* f32_of(napi_env env, napi_value val, size_t* n, const char* what) {
  void* data = napi::typed_data(env, val, napi_float32_array, n);
  if (!data) throw Err{std::string(what) + ": expected a Float32Array"};
  return static_cast<float*>(data);
}

static napi_value num_js(napi_env env, double d) {
  napi_value r;
  NAPI_OK(napi_create_double(env, d, &r));
  return r;
}

#define FN(name) static napi_value name(napi_env env, napi_callback_info info)

FN(js_set_threads) {
  return guarded(env, [&] {
    Args a(env, info, 1);
    double d = a.num(0);
    if (!(d >= 1 && d <= 256)) throw Err{"threads must be in 1..256"};
    g_threads = static_cast<int>(d);
    return num_js(env, g_threads);
  });
}

FN(js_config) {
  // config(parMin, useAvx2, spawnPerCall) -> settings; negative args leave a setting unchanged
  return guarded(env, [&] {
    Args a(env, info, 3);
    double pm = a.num(0), ua = a.num(1), sp = a.num(2);
    if (pm >= 0) g_par_min = static_cast<size_t>(pm);
    if (sp >= 0) Pool::get().spawn_per_call = sp > 0;
    if (ua >= 0) g_leaf = (ua > 0 && g_has_avx2) ? &leaf_avx2 : &leaf_base;
    napi_value o;
    NAPI_OK(napi_create_object(env, &o));
    napi_value t;
    NAPI_OK(napi_get_boolean(env, g_has_avx2, &t));
    NAPI_OK(napi_set_named_property(env, o, "avx2Available", t));
    NAPI_OK(napi_get_boolean(env, g_leaf == &leaf_avx2, &t));
    NAPI_OK(napi_set_named_property(env, o, "avx2", t));
    NAPI_OK(napi_set_named_property(env, o, "threads", num_js(env, g_threads)));
    NAPI_OK(napi_get_boolean(env, Pool::get().spawn_per_call, &t));
    NAPI_OK(napi_set_named_property(env, o, "spawnPerCall", t));
    NAPI_OK(napi_set_named_property(env, o, "parallelMin", num_js(env, static_cast<double>(g_par_min))));
    return o;
  });
}

FN(js_decode) {  // decode(dt, bytes, outF32)
  return guarded(env, [&] {
    Args a(env, info, 3);
    int dt = static_cast<int>(a.num(0));
    View src = view_of(env, a.v[1], dt, "decode input");
    size_t n;
    float* out = f32_of(env, a.v[2], &n, "decode output");
    if (n != src.n) throw Err{"decode: output length mismatch"};
    par_range(n, [&](size_t b, size_t e) { decode_tile(src, b, e - b, out + b); });
    return static_cast<napi_value>(nullptr);
  });
}

FN(js_encode) {  // encode(dt, f32, outBytes)
  return guarded(env, [&] {
    Args a(env, info, 3);
    int dt = static_cast<int>(a.num(0));
    size_t n;
    float* src = f32_of(env, a.v[1], &n, "encode input");
    View out = view_of(env, a.v[2], dt, "encode output");
    if (n != out.n) throw Err{"encode: output length mismatch"};
    par_range(n, [&](size_t b, size_t e) { encode_tile(src + b, out, b, e - b); });
    return static_cast<napi_value>(nullptr);
  });
}

FN(js_axpy) {  // axpy(y, a, x)
  return guarded(env, [&] {
    Args a(env, info, 3);
    size_t n, n2;
    float* y = f32_of(env, a.v[0], &n, "y");
    double s = a.num(1);
    float* x = f32_of(env, a.v[2], &n2, "x");
    if (n != n2) throw Err{"axpy: length mismatch"};
    par_range(n, [&](size_t b, size_t e) { g_leaf->axpy_d(y + b, s, x + b, e - b); });
    return static_cast<napi_value>(nullptr);
  });
}

FN(js_scale) {  // scale(x, a)
  return guarded(env, [&] {
    Args a(env, info, 2);
    size_t n;
    float* x = f32_of(env, a.v[0], &n, "x");
    double s = a.num(1);
    par_range(n, [&](size_t b, size_t e) { g_leaf->scale_d(x + b, s, e - b); });
    return static_cast<napi_value>(nullptr);
  });
}

FN(js_sub) {  // sub(out, a, b)
  return guarded(env, [&] {
    Args a(env, info, 3);
    size_t n, n1, n2;
    float* o = f32_of(env, a.v[0], &n, "out");
    float* p = f32_of(env, a.v[1], &n1, "a");
    float* q = f32_of(env, a.v[2], &n2, "b");
    if (n != n1 || n != n2) throw Err{"sub: length mismatch"};
    par_range(n, [&](size_t b, size_t e) { g_leaf->sub_f(o + b, p + b, q + b, e - b); });
    return static_cast<napi_value>(nullptr);
  });
}

FN(js_delta_axpy) {  // deltaAxpy(acc, w, x, base)
  return guarded(env, [&] {
    Args a(env, info, 4);
    size_t n, n1, n2;
    float* acc = f32_of(env, a.v[0], &n, "acc");
    float w = static_cast<float>(a.num(1));
    float* x = f32_of(env, a.v[2], &n1, "x");
    float* b0 = f32_of(env, a.v[3], &n2, "base");
    if (n != n1 || n != n2) throw Err{"deltaAxpy: length mismatch"};
    par_range(n, [&](size_t b, size_t e) { g_leaf->delta_axpy(acc + b, w, x + b, b0 + b, e - b); });
    return static_cast<napi_value>(nullptr);
  });
}

// reduce(kind, a, b?) kind: 0 l1, 1 l2sq, 2 dot, 3 absMax
FN(js_reduce) {
  return guarded(env, [&] {
    Args a(env, info, 3);
    int kind = static_cast<int>(a.num(0));
    size_t n, n2 = 0;
    float* x = f32_of(env, a.v[1], &n, "a");
    float* y = nullptr;
    if (kind == 2) {
      y = f32_of(env, a.v[2], &n2, "b");
      if (n != n2) throw Err{"dot: length mismatch"};
    }
    size_t nb = (n + BLOCK - 1) / BLOCK;
    std::vector<double> part(nb, 0.0);
    std::vector<int> nan(nb, 0);
    par_blocks(n, [&](size_t bi, size_t b, size_t e) {
      switch (kind) {
        case 0:
          part[bi] = g_leaf->red_l1(x + b, e - b);
          break;
        case 1:
          part[bi] = g_leaf->red_l2sq(x + b, e - b);
          break;
        case 2:
          part[bi] = g_leaf->red_dot(x + b, y + b, e - b);
          break;
        default:
          part[bi] = g_leaf->red_absmax(x + b, e - b, &nan[bi]);
          break;
      }
    });
    double s = 0;
    if (kind == 3) {
      for (size_t bi = 0; bi < nb; bi++) {
        if (nan[bi]) return num_js(env, NAN);
        s = std::max(s, part[bi]);
      }
    } else {
      for (size_t bi = 0; bi < nb; bi++) s += part[bi];
    }
    return num_js(env, s);
  });
}

static uint32_t u32_arg(const Args& a, size_t i) {
  double d = a.num(i);
  if (!(d >= 0 && d <= 4294967295.0) || d != std::floor(d)) throw Err{"expected a 32-bit unsigned integer"};
  return static_cast<uint32_t>(d);
}

// bernoulli(x, c, seed, wantL1) -> undefined | [l1Before, l1After]
FN(js_bernoulli) {
  return guarded(env, [&] {
    Args a(env, info, 4);
    size_t n;
    float* x = f32_of(env, a.v[0], &n, "x");
    uint32_t c = u32_arg(a, 1), seed = u32_arg(a, 2);
    bool want = a.num(3) != 0;
    if (n > 0xffffffffu) throw Err{"bernoulli: more than 2^32-1 elements"};
    size_t nb = (n + BLOCK - 1) / BLOCK;
    std::vector<double> pb(nb, 0.0), pa(nb, 0.0);
    par_blocks(n, [&](size_t bi, size_t b, size_t e) {
      if (want) {
        for (size_t s = b; s < e; s += TILE) {
          size_t len = std::min(TILE, e - s);
          pb[bi] += g_leaf->red_l1(x + s, len);
          g_leaf->bern(x + s, x + s, len, static_cast<uint32_t>(s), seed, c);
          pa[bi] += g_leaf->red_l1(x + s, len);
        }
      } else {
        g_leaf->bern(x + b, x + b, e - b, static_cast<uint32_t>(b), seed, c);
      }
    });
    if (!want) return static_cast<napi_value>(nullptr);
    double sb = 0, sa = 0;
    for (size_t bi = 0; bi < nb; bi++) {
      sb += pb[bi];
      sa += pa[bi];
    }
    napi_value arr;
    NAPI_OK(napi_create_array_with_length(env, 2, &arr));
    NAPI_OK(napi_set_element(env, arr, 0, num_js(env, sb)));
    NAPI_OK(napi_set_element(env, arr, 1, num_js(env, sa)));
    return arr;
  });
}

// topk(x, k) keeps the k largest |x| in place; kthAbs(x, k) -> the k-th largest |x| over non-NaN entries
// (1 <= k <= #non-NaN, checked in JS)
static napi_value topk_call(napi_env env, napi_callback_info info, bool kth) {
  return guarded(env, [&] {
    Args a(env, info, 2);
    size_t n;
    float* x = f32_of(env, a.v[0], &n, "x");
    const double kd = a.num(1);
    const int64_t k = kth ? static_cast<int64_t>(kd)
                          : kd >= static_cast<double>(n) ? static_cast<int64_t>(n) : (kd <= 0 ? 0 : static_cast<int64_t>(std::floor(kd)));
    View xv;
    xv.p = x;
    xv.n = n;
    Sources src;
    src.xs.push_back(&xv);
    const TopK t = select_topk(src, n, k)[0];
    if (kth) {
      if (t.keep_all || t.thr > KEY_INF) throw Err{"kthLargestAbs: k out of range"};
      float f;
      std::memcpy(&f, &t.thr, 4);
      return num_js(env, f);
    }
    if (t.keep_all) return static_cast<napi_value>(nullptr);
    par_range(n, [&](size_t b, size_t e) { g_leaf->topk_apply(x + b, e - b, static_cast<int64_t>(b), t.thr, t.cut); });
    return static_cast<napi_value>(nullptr);
  });
}

FN(js_topk) { return topk_call(env, info, false); }
FN(js_kth_abs) { return topk_call(env, info, true); }

static std::vector<napi_value> array_items(napi_env env, napi_value arr, const char* what) {
  bool is_arr = false;
  NAPI_OK(napi_is_array(env, arr, &is_arr));
  if (!is_arr) throw Err{std::string(what) + ": expected an array"};
  uint32_t len;
  NAPI_OK(napi_get_array_length(env, arr, &len));
  std::vector<napi_value> out(len);
  for (uint32_t i = 0; i < len; i++) NAPI_OK(napi_get_element(env, arr, i, &out[i]));
  return out;
}

// gta(out, outDt, base|null, baseDt, models[], modelDts[], weights[], sparsify, k, c, seeds[],
//     consensus, normalize, rescale, lambda)
FN(js_gta) {
  return guarded(env, [&] {
    Args a(env, info, 15);
    Gta g;
    g.out = view_of(env, a.v[0], static_cast<int>(a.num(1)), "out");
    g.n = g.out.n;
    if (!a.is_null(2)) {
      g.has_base = true;
      g.base = view_of(env, a.v[2], static_cast<int>(a.num(3)), "base");
      if (g.base.n != g.n) throw Err{"gta: base length mismatch"};
    }
    auto ms = array_items(env, a.v[4], "models");
    auto dts = array_items(env, a.v[5], "model dtypes");
    auto ws = array_items(env, a.v[6], "weights");
    auto ss = array_items(env, a.v[10], "seeds");
    if (dts.size() != ms.size() || ws.size() != ms.size()) throw Err{"gta: models/dtypes/weights length mismatch"};
    for (size_t j = 0; j < ms.size(); j++) {
      double dt, w;
      NAPI_OK(napi_get_value_double(env, dts[j], &dt));
      NAPI_OK(napi_get_value_double(env, ws[j], &w));
      g.models.push_back(view_of(env, ms[j], static_cast<int>(dt), "model"));
      if (g.models.back().n != g.n) throw Err{"gta: model length mismatch"};
      g.w.push_back(static_cast<float>(w));
    }
    g.sparsify = static_cast<int>(a.num(7));
    g.k = static_cast<int64_t>(a.num(8));
    g.c = u32_arg(a, 9);
    if (g.sparsify == SP_RANDOM) {
      if (ss.size() != ms.size()) throw Err{"gta: one seed per model required"};
      for (auto& s : ss) {
        double d;
        NAPI_OK(napi_get_value_double(env, s, &d));
        g.seeds.push_back(static_cast<uint32_t>(d));
      }
    }
    g.consensus = a.num(11) != 0;
    g.normalize = a.num(12) != 0;
    g.rescale = a.num(13) != 0;
    g.lambda = static_cast<float>(a.num(14));
    if (g.n > 0xffffffffu) throw Err{"gta: more than 2^32-1 elements"};
    gta_run(g);
    return static_cast<napi_value>(nullptr);
  });
}

}  // namespace sd

NAPI_MODULE_INIT() {
  using namespace sd;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  g_has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#endif
  g_leaf = g_has_avx2 ? &leaf_avx2 : &leaf_base;
  const std::pair<const char*, napi_callback> fns[] = {
      {"setThreads", js_set_threads}, {"config", js_config}, {"decode", js_decode}, {"encode", js_encode},
      {"axpy", js_axpy},        {"scale", js_scale},       {"sub", js_sub},       {"deltaAxpy", js_delta_axpy},
      {"reduce", js_reduce},    {"bernoulli", js_bernoulli}, {"topk", js_topk}, {"kthAbs", js_kth_abs},
      {"gta", js_gta},
  };
  if (!napi::export_functions(env, exports, fns)) return nullptr;
  if (!register_infer(env, exports)) return nullptr;
  if (!register_train(env, exports)) return nullptr;
  if (!register_nd(env, exports)) return nullptr;
  return exports;
}
