import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError, type Command, parseCli } from './command.ts';
import { ProgressBar, formatBytes } from './progress.ts';
import { loadMergeConfig } from '../merge/config.ts';
import { runMerge } from '../merge/engine.ts';
import { loadCustomAlgorithm } from '../merge/custom.ts';
import { parseSize } from '../io/checkpoint.ts';
import { setThreads } from '../tensor/kernels.ts';

const usage = `selfdev merge CONFIG.yml OUT_DIR [options]

Merges Hugging Face checkpoints (safetensors, f32/bf16/f16, sharded) as a mergekit YAML config
describes, streaming one tensor at a time. The output folder appears only when complete.

Options:
  --seed N              seed of random methods (dare_*, della*), default 0
  --threads N           kernel threads, default 2
  --out-shard-size S    largest output shard, e.g. 5GB (default), 500MB
  --overwrite           replace OUT_DIR if it exists (never an input: OUT_DIR may not be, contain
                        or lie inside a model folder, the config or the algorithm it reads)
  --allow-non-finite    write NaN / ±Inf results (by default the merge stops at the first tensor
                        that has any, naming it and the count; also allow_non_finite: true)
  --json                print the summary as JSON

merge_method: custom runs a merge algorithm program (docs/algorithm-contract.md), e.g. one that
\`selfdev run\` discovered, in the sandbox: \`algorithm: path/to/algorithm.js\` in the config.
The sandbox reads each tensor from the model files itself, as the loop's streamed merges do; a
program failing on a tensor stops the merge with the tensor's name and the failure, no output left.

Example:
  selfdev merge examples/ties.yml ./merged --seed 1`;

export const command: Command = {
  name: 'merge',
  summary: 'Merge checkpoints from a mergekit YAML config (every mergekit method).',
  usage,
  async run(args) {
    const parsed = parseCli(() => parseArgs({
        args,
        allowPositionals: true,
        options: {
          seed: { type: 'string' },
          threads: { type: 'string' },
          'out-shard-size': { type: 'string' },
          overwrite: { type: 'boolean' },
          'allow-non-finite': { type: 'boolean' },
          json: { type: 'boolean' },
        },
      }));
    const [configPath, outDir, ...extra] = parsed.positionals;
    if (!configPath || !outDir || extra.length > 0) throw new UsageError(`expected CONFIG.yml OUT_DIR\n\n${usage}`);
    const v = parsed.values;
    const seed = v.seed === undefined ? 0 : Number(v.seed);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed must be a non-negative integer, got ${v.seed}`);
    if (v.threads !== undefined) {
      const n = Number(v.threads);
      if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError(`--threads must be an integer from 1 to 256, got ${v.threads}`);
      setThreads(n);
    }
    let maxShardBytes: number | undefined;
    if (v['out-shard-size'] !== undefined) {
      try {
        maxShardBytes = parseSize(v['out-shard-size']);
      } catch (e) {
        throw new UsageError(`--out-shard-size: ${(e as Error).message}`);
      }
    }
    const config = loadMergeConfig(configPath);
    const custom = config.method === 'custom' ? await loadCustomAlgorithm(config, { seed }) : null;
    const bar = new ProgressBar('merge');
    let summary;
    let sandboxRss: number | null = null;
    try {
      summary = await runMerge(config, outDir, {
        seed,
        maxShardBytes,
        overwrite: v.overwrite ?? false,
        allowNonFinite: v['allow-non-finite'] ?? false,
        custom: custom?.custom,
        onProgress: (p) => bar.update(p.done, p.total, `${formatBytes((p.bytesRead + p.bytesWritten) / Math.max(p.seconds, 1e-9))}/s`),
      });
      sandboxRss = custom?.sandboxPeakRssBytes() ?? null;
    } finally {
      bar.done();
      custom?.close();
    }
    // merge_method: custom: the sandbox process's own peak too (it holds the tensors of the merge)
    if (v.json) console.log(JSON.stringify({ ...summary, maxRssBytes: peakRssBytes(), ...(custom && { sandboxMaxRssBytes: sandboxRss }) }));
    else
      console.log(
        `merged ${summary.tensors} tensors (${summary.merged} merged, ${summary.copied} copied), ${(summary.parameters / 1e6).toFixed(2)}M parameters, ` +
          `${summary.shards} shard(s) in ${summary.seconds.toFixed(2)} s (${formatBytes((summary.bytesRead + summary.bytesWritten) / summary.seconds)}/s) → ${summary.outDir}`,
      );
    return 0;
  },
};

/**
 * Peak resident memory of this process. On Linux, VmHWM of /proc/self/status (the high-water mark
 * of this program's own address space: getrusage's maxRSS also counts the parent's memory at fork
 * time); elsewhere getrusage.
 */
function peakRssBytes(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}
