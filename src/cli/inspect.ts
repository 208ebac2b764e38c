import { parseArgs } from 'node:util';
import { basename } from 'node:path';
import { UsageError, type Command, parseCli } from './command.ts';
import { Checkpoint } from '../io/checkpoint.ts';
import { CheckpointError } from '../io/errors.ts';
import { numelOf } from '../io/safetensors.ts';
import { configProblems } from '../io/model-config.ts';

const usage = `selfdev inspect MODEL_DIR [--stats] [--json]

Validates a Hugging Face model folder (model.safetensors, or model.safetensors.index.json and its
shards: every header, the index and the data layout) and lists its tensors, dtypes, shapes and
parameter count, with a summary of config.json. Exits 1 with the specific problem if the folder
is not a valid checkpoint.

Options:
  --stats  also read every float tensor: mean, std, largest |value|, and NaN / Inf counts
           (exits 1 if any value is not finite)
  --json   print one JSON object instead of the table

Example:
  selfdev inspect ./merged`;

export interface InspectReport {
  dir: string;
  valid: true;
  files: string[];
  shardCount: number;
  tensorCount: number;
  parameterCount: number;
  totalBytes: number;
  bytesByDtype: Record<string, number>;
  config: ConfigSummary | null;
  auxFiles: string[];
  /** Disagreements between config.json and the tensors (the files themselves are valid). */
  warnings: string[];
  tensors: Array<{ name: string; dtype: string; shape: number[]; numel: number; file: string; stats?: TensorStats }>;
}

export interface TensorStats {
  mean: number;
  std: number;
  maxAbs: number;
  nan: number;
  inf: number;
}

/** Mean, std (population), largest |x| over the finite values, and counts of NaN and ±Inf. */
export function tensorStats(x: Float32Array): TensorStats {
  let nan = 0;
  let inf = 0;
  let sum = 0;
  let maxAbs = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v !== v) nan++;
    else if (v === Infinity || v === -Infinity) inf++;
    else {
      sum += v;
      const a = v < 0 ? -v : v;
      if (a > maxAbs) maxAbs = a;
    }
  }
  const n = x.length - nan - inf;
  const mean = n > 0 ? sum / n : 0;
  let ss = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (Number.isFinite(v)) ss += (v - mean) * (v - mean);
  }
  return { mean, std: n > 0 ? Math.sqrt(ss / n) : 0, maxAbs, nan, inf };
}

export interface ConfigSummary {
  architecture: string | null;
  modelType: string | null;
  layers: number | null;
  hiddenSize: number | null;
  intermediateSize: number | null;
  vocabSize: number | null;
  heads: number | null;
  kvHeads: number | null;
  dtype: string | null;
  ropeTheta: number | null;
  tieWordEmbeddings: boolean | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

function summarizeConfig(c: Record<string, unknown>): ConfigSummary {
  const arch = Array.isArray(c.architectures) ? c.architectures.filter((a) => typeof a === 'string').join(', ') || null : null;
  const rp = c.rope_parameters;
  const ropeTheta = num(c.rope_theta) ?? (rp && typeof rp === 'object' ? num((rp as Record<string, unknown>).rope_theta) : null);
  return {
    architecture: arch,
    modelType: str(c.model_type),
    layers: num(c.num_hidden_layers),
    hiddenSize: num(c.hidden_size),
    intermediateSize: num(c.intermediate_size),
    vocabSize: num(c.vocab_size),
    heads: num(c.num_attention_heads),
    kvHeads: num(c.num_key_value_heads) ?? num(c.num_attention_heads),
    dtype: str(c.torch_dtype) ?? str(c.dtype),
    ropeTheta,
    tieWordEmbeddings: typeof c.tie_word_embeddings === 'boolean' ? c.tie_word_embeddings : null,
  };
}

/**
 * Consistency of config.json with the tensors present (HF decoder naming), from the shared reader
 * that eval, export-gguf, merge and the loop refuse on (inspect reports them). Bounded by the tensors
 * the checkpoint holds, whatever sizes the config claims.
 */
function crossCheck(ck: Checkpoint): string[] {
  return configProblems(ck.config!, ck);
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

export function inspectCheckpoint(dir: string, opts: { stats?: boolean } = {}): InspectReport {
  const ck = Checkpoint.open(dir);
  try {
    let scratch = new Float32Array(0);
    let raw = new Uint8Array(0);
    const tensors = ck.tensorNames().map((name) => {
      const e = ck.info(name);
      const numel = numelOf(e.shape);
      const row: InspectReport['tensors'][number] = { name, dtype: e.dtype, shape: e.shape, numel, file: basename(e.file) };
      if (opts.stats && FLOAT_DTYPES.has(e.dtype)) {
        if (scratch.length < numel) scratch = new Float32Array(numel);
        if (raw.byteLength < e.byteLength) raw = new Uint8Array(e.byteLength);
        row.stats = tensorStats(ck.readF32(name, scratch.subarray(0, numel), raw));
      }
      return row;
    });
    const bytesByDtype: Record<string, number> = {};
    for (const name of ck.tensorNames()) {
      const e = ck.info(name);
      bytesByDtype[e.dtype] = (bytesByDtype[e.dtype] ?? 0) + e.byteLength;
    }
    const config = ck.config ? summarizeConfig(ck.config) : null;
    const files = ck.shards.map((s) => basename(s.path));
    if (ck.indexPath) files.unshift(basename(ck.indexPath));
    return {
      dir,
      valid: true,
      files,
      shardCount: ck.shards.length,
      tensorCount: tensors.length,
      parameterCount: ck.parameterCount(),
      totalBytes: ck.totalBytes(),
      bytesByDtype,
      config,
      auxFiles: ck.auxFiles(),
      warnings: config ? crossCheck(ck) : [],
      tensors,
    };
  } finally {
    ck.close();
  }
}

const int = (n: number): string => n.toLocaleString('en-US');
/** 86848 → "86.8K" parameters; bytes → "173.7 KB" (decimal units). */
function human(n: number, bytes: boolean): string {
  const steps: Array<[number, string]> = bytes ? [[1e12, ' TB'], [1e9, ' GB'], [1e6, ' MB'], [1e3, ' KB']] : [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [v, p] of steps) if (n >= v) return `${(n / v).toFixed(n / v < 10 ? 2 : 1)}${p}`;
  return bytes ? `${n} B` : String(n);
}

function renderTable(rows: string[][], rightAlign: boolean[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (rightAlign[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

function render(r: InspectReport): string {
  const out: string[] = [];
  out.push(`${r.dir}: valid safetensors checkpoint, ${r.shardCount === 1 ? '1 file' : `${r.shardCount} shards + index`}`);
  if (r.config) {
    const c = r.config;
    const kv: Array<[string, string | null]> = [
      ['architecture', c.architecture === null ? null : `${c.architecture}${c.modelType ? ` (${c.modelType})` : ''}`],
      ['layers', c.layers === null ? null : String(c.layers)],
      ['hidden size', c.hiddenSize === null ? null : String(c.hiddenSize)],
      ['intermediate', c.intermediateSize === null ? null : String(c.intermediateSize)],
      ['heads', c.heads === null ? null : `${c.heads}${c.kvHeads !== null && c.kvHeads !== c.heads ? ` (${c.kvHeads} key/value)` : ''}`],
      ['vocab', c.vocabSize === null ? null : String(c.vocabSize)],
      ['rope theta', c.ropeTheta === null ? null : String(c.ropeTheta)],
      ['tied embeddings', c.tieWordEmbeddings === null ? null : String(c.tieWordEmbeddings)],
      ['config dtype', c.dtype],
    ];
    out.push('', 'config.json:');
    for (const [k, v] of kv) if (v !== null) out.push(`  ${k.padEnd(16)}${v}`);
  } else {
    out.push('', 'config.json: absent');
  }
  out.push('');
  const rows = [['name', 'dtype', 'shape', 'numel'], ...r.tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, int(t.numel)])];
  const right = [false, false, false, true];
  const withStats = r.tensors.some((t) => t.stats);
  if (withStats) {
    rows[0]!.push('mean', 'std', 'max|x|', 'nan', 'inf');
    right.push(true, true, true, true, true);
    const g = (v: number) => (v === 0 ? '0' : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4 ? v.toPrecision(4) : v.toExponential(2));
    r.tensors.forEach((t, i) => {
      const st = t.stats;
      rows[i + 1]!.push(...(st ? [g(st.mean), g(st.std), g(st.maxAbs), String(st.nan), String(st.inf)] : ['-', '-', '-', '-', '-']));
    });
  }
  if (r.shardCount > 1) {
    rows[0]!.push('file');
    right.push(false);
    r.tensors.forEach((t, i) => rows[i + 1]!.push(t.file));
  }
  out.push(...renderTable(rows, right));
  out.push('');
  out.push(`tensors      ${int(r.tensorCount)}`);
  out.push(`parameters   ${int(r.parameterCount)} (${human(r.parameterCount, false)})`);
  const byDtype = Object.entries(r.bytesByDtype).map(([d, b]) => `${d} ${int(b)} B`).join(', ');
  out.push(`bytes        ${int(r.totalBytes)} (${human(r.totalBytes, true)})${byDtype ? `: ${byDtype}` : ''}`);
  out.push(`shards       ${r.shardCount}`);
  if (r.auxFiles.length > 0) out.push(`other files  ${r.auxFiles.join(', ')}`);
  for (const w of r.warnings) out.push(`warning: ${w}`);
  return out.join('\n');
}

export const command: Command = {
  name: 'inspect',
  summary: "List a checkpoint's tensors, dtypes, shapes and parameter count, and validate it.",
  usage,
  async run(args) {
    const parsed = parseCli(() => parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, stats: { type: 'boolean' } } }));
    const [dir, ...extra] = parsed.positionals;
    if (!dir || extra.length > 0) throw new UsageError(`expected exactly one MODEL_DIR\n\n${usage}`);
    let report: InspectReport;
    try {
      report = inspectCheckpoint(dir, { stats: parsed.values.stats ?? false });
    } catch (e) {
      if (parsed.values.json && e instanceof CheckpointError) {
        console.log(JSON.stringify({ dir, valid: false, error: e.message, file: e.file, tensor: e.tensor ?? null }));
        console.error(`selfdev inspect: ${e.message}`);
        return 1;
      }
      throw e;
    }
    console.log(parsed.values.json ? JSON.stringify(report, null, 2) : render(report));
    const bad = report.tensors.filter((t) => t.stats && (t.stats.nan > 0 || t.stats.inf > 0));
    if (bad.length > 0) {
      const first = bad[0]!;
      console.error(`selfdev inspect: ${bad.length} tensor(s) hold non-finite values, first '${first.name}' (${first.stats!.nan} NaN, ${first.stats!.inf} Inf)`);
      return 1;
    }
    return 0;
  },
};
