/**
 * Test and benchmark fixtures: deterministic Hugging Face Llama folders, raw safetensors bytes
 * (valid or deliberately corrupt), temp folders. Same seed → byte-identical output.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DTYPE_BYTES, encodeFromF32, torchDTypeName } from '../tensor/dtype.ts';
import type { DType, FloatDType } from '../tensor/dtype.ts';
import { Checkpoint, CheckpointWriter } from './checkpoint.ts';
import type { PlannedTensor } from './checkpoint.ts';
import { buildHeader, numelOf } from './safetensors.ts';

/** A seeded PRNG (sfc32, seeded through splitmix32) with uniform and standard normal draws. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.u32() / 4294967296;
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u1 = (this.u32() + 1) / 4294967297; // (0, 1]
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }
  /** Fills `out` with normal(mean, std) values. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

/** A 32-bit seed derived from a seed and a string (FNV-1a of the string, mixed with the seed). */
export function deriveSeed(seed: number, key: string): number {
  let h = 0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1);
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export interface LlamaFixtureOptions {
  layers: number;
  hidden: number;
  intermediate: number;
  vocab: number;
  /** Attention heads (default: 4 if hidden is a multiple of 4, else 1). */
  heads?: number;
  /** Key/value heads (default: heads). */
  kvHeads?: number;
  dtype: FloatDType;
  seed: number;
  maxShardBytes?: number;
  /** No lm_head.weight; config says tie_word_embeddings. */
  tieEmbeddings?: boolean;
  /** Copy of another checkpoint (same shapes) plus normal(0, 1) × scale noise seeded by `seed`. */
  perturb?: { from: string; scale: number };
  overwrite?: boolean;
  /** Also write a tokenizer.json (fixtureTokenizerJson) so the folder is a complete model. */
  tokenizer?: boolean;
}

/**
 * A small valid tokenizer.json (BPE, ids below `vocab`: "<unk>", "a", "b", "ab" with the merge
 * "a b", as many as fit), with `tag` as an extra top-level field so fixtures can tell copies apart.
 */
export function fixtureTokenizerJson(vocab: number, tag?: string): string {
  const tokens = ['<unk>', 'a', 'b', 'ab'].slice(0, Math.max(1, Math.min(vocab, 4)));
  const v = Object.fromEntries(tokens.map((t, i) => [t, i]));
  const merges = tokens.length === 4 ? ['a b'] : [];
  return JSON.stringify({ version: '1.0', added_tokens: [{ id: 0, content: '<unk>', special: true }], model: { type: 'BPE', unk_token: '<unk>', vocab: v, merges }, ...(tag === undefined ? {} : { from: tag }) });
}

export interface LlamaFixture {
  dir: string;
  config: Record<string, unknown>;
  /** Tensors in the order written (HF state_dict order). */
  tensors: PlannedTensor[];
  parameterCount: number;
}

/** config.json exactly as transformers writes it for LlamaForCausalLM. */
export function llamaConfig(o: { layers: number; hidden: number; intermediate: number; vocab: number; heads: number; kvHeads: number; dtype: FloatDType; tieEmbeddings?: boolean }): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 1,
    eos_token_id: 2,
    head_dim: o.hidden / o.heads,
    hidden_act: 'silu',
    hidden_size: o.hidden,
    initializer_range: 0.02,
    intermediate_size: o.intermediate,
    max_position_embeddings: 2048,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: o.heads,
    num_hidden_layers: o.layers,
    num_key_value_heads: o.kvHeads,
    pretraining_tp: 1,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: o.tieEmbeddings ?? false,
    torch_dtype: torchDTypeName(o.dtype),
    transformers_version: '4.46.0',
    use_cache: true,
    vocab_size: o.vocab,
  };
}

/** HF Llama tensor names and shapes, in state_dict order. */
export function llamaTensors(o: { layers: number; hidden: number; intermediate: number; vocab: number; heads: number; kvHeads: number; dtype: DType; tieEmbeddings?: boolean }): PlannedTensor[] {
  const d = o.hidden / o.heads;
  const t: PlannedTensor[] = [];
  const add = (name: string, shape: number[]) => t.push({ name, dtype: o.dtype, shape });
  add('model.embed_tokens.weight', [o.vocab, o.hidden]);
  for (let i = 0; i < o.layers; i++) {
    const p = `model.layers.${i}.`;
    add(p + 'self_attn.q_proj.weight', [o.heads * d, o.hidden]);
    add(p + 'self_attn.k_proj.weight', [o.kvHeads * d, o.hidden]);
    add(p + 'self_attn.v_proj.weight', [o.kvHeads * d, o.hidden]);
    add(p + 'self_attn.o_proj.weight', [o.hidden, o.heads * d]);
    add(p + 'mlp.gate_proj.weight', [o.intermediate, o.hidden]);
    add(p + 'mlp.up_proj.weight', [o.intermediate, o.hidden]);
    add(p + 'mlp.down_proj.weight', [o.hidden, o.intermediate]);
    add(p + 'input_layernorm.weight', [o.hidden]);
    add(p + 'post_attention_layernorm.weight', [o.hidden]);
  }
  add('model.norm.weight', [o.hidden]);
  if (!o.tieEmbeddings) add('lm_head.weight', [o.vocab, o.hidden]);
  return t;
}

/**
 * Writes a real Hugging Face Llama folder (config.json, generation_config.json, safetensors weights,
 * sharded if maxShardBytes says so). Weights are normal(0, 0.02), norm weights 1 + normal(0, 0.02),
 * each tensor seeded from (seed, tensor name) so values do not depend on order or sharding.
 */
export function makeLlamaCheckpoint(dir: string, opts: LlamaFixtureOptions): LlamaFixture {
  const { layers, hidden, intermediate, vocab, dtype, seed } = opts;
  for (const [k, v] of Object.entries({ layers, hidden, intermediate, vocab })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`makeLlamaCheckpoint: ${k} must be a positive integer, got ${v}`);
  }
  const heads = opts.heads ?? (hidden % 4 === 0 ? 4 : 1);
  const kvHeads = opts.kvHeads ?? heads;
  if (hidden % heads !== 0) throw new Error(`makeLlamaCheckpoint: hidden ${hidden} is not a multiple of heads ${heads}`);
  if (heads % kvHeads !== 0) throw new Error(`makeLlamaCheckpoint: heads ${heads} is not a multiple of kvHeads ${kvHeads}`);
  const shapeOpts = { layers, hidden, intermediate, vocab, heads, kvHeads, dtype, tieEmbeddings: opts.tieEmbeddings ?? false };
  const config = llamaConfig(shapeOpts);
  const tensors = llamaTensors(shapeOpts);
  const base = opts.perturb ? Checkpoint.open(opts.perturb.from) : null;
  const w = new CheckpointWriter(dir, { maxShardBytes: opts.maxShardBytes, overwrite: opts.overwrite });
  try {
    if (base) {
      for (const t of tensors) {
        const e = base.info(t.name);
        if (e.shape.join(',') !== t.shape.join(',')) throw new Error(`makeLlamaCheckpoint: perturb base ${opts.perturb!.from} has ${t.name} of shape [${e.shape}], expected [${t.shape}]`);
      }
    }
    w.plan(tensors);
    for (const t of tensors) {
      const rng = new Rng(deriveSeed(seed, t.name));
      let x: Float32Array;
      if (base) {
        x = base.readF32(t.name);
        const s = opts.perturb!.scale;
        for (let i = 0; i < x.length; i++) x[i] = x[i]! + s * rng.normal();
      } else {
        x = new Float32Array(numelOf(t.shape));
        rng.fillNormal(x, t.name.endsWith('norm.weight') ? 1 : 0, 0.02);
      }
      w.write(t.name, encodeFromF32(x, dtype));
    }
    w.writeJson('config.json', config);
    w.writeJson('generation_config.json', { _from_model_config: true, bos_token_id: 1, eos_token_id: 2, transformers_version: '4.46.0' });
    if (opts.tokenizer) w.writeJson('tokenizer.json', JSON.parse(fixtureTokenizerJson(vocab)));
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  } finally {
    base?.close();
  }
  return { dir, config, tensors, parameterCount: tensors.reduce((n, t) => n + numelOf(t.shape), 0) };
}

/** Bytes of a valid safetensors file (tensors in the given order; data defaults to a 0,1,2… byte ramp). */
export function makeSafetensorsBytes(tensors: Array<{ name: string; dtype: DType; shape: number[]; data?: Uint8Array }>, metadata?: Record<string, string>): Uint8Array {
  const head = buildHeader(tensors, metadata);
  const datas = tensors.map((t) => {
    if (t.data) return t.data;
    const d = new Uint8Array(numelOf(t.shape) * DTYPE_BYTES[t.dtype]);
    for (let i = 0; i < d.length; i++) d[i] = i & 0xff;
    return d;
  });
  const total = head.byteLength + datas.reduce((n, d) => n + d.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let pos = head.byteLength;
  for (const d of datas) {
    out.set(d, pos);
    pos += d.byteLength;
  }
  return out;
}

/**
 * Bytes of an arbitrary (possibly corrupt) safetensors file: the header length field (by default the
 * UTF-8 length of `header`), the header text (an object is JSON-stringified), then `data` (or that
 * many zero bytes).
 */
export function rawSafetensorsBytes(header: string | object | Uint8Array, data: Uint8Array | number = 0, opts: { headerLength?: number | bigint } = {}): Uint8Array {
  const h = header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.byteLength + d.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(opts.headerLength ?? h.byteLength), true);
  out.set(h, 8);
  out.set(d, 8 + h.byteLength);
  return out;
}

/** A fresh folder under os.tmpdir(); remove it with `cleanup()`. */
export function makeTempDir(prefix = 'selfdev-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A live process as /proc shows it. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  /** The whole command line, arguments joined by spaces. */
  args: string;
}

/**
 * Live (not zombie) processes, read from /proc (Linux). Tests use this rather than `ps`, which a
 * bare CI image may lack and which cuts command lines to $COLUMNS when it is set.
 */
export function liveProcesses(): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z' || f[0] === 'X') continue;
      const args = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter((a) => a !== '').join(' ');
      out.push({ pid: Number(d), ppid: Number(f[1]), pgid: Number(f[2]), args });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
