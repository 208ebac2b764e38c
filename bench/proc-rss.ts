/** Memory of a process tree, for the benchmarks' peak-RSS numbers (Linux /proc), and `selfdev merge` run as a measured child. */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** RSS (bytes) of `pid` and all its descendants, from /proc. */
export function treeRss(pid: number): number {
  const kids = new Map<number, number[]>();
  const rss = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(f[1]);
      (kids.get(ppid) ?? kids.set(ppid, []).get(ppid)!).push(Number(d));
      rss.set(Number(d), Number(f[21]) * 4096);
    } catch {
      // gone meanwhile
    }
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    total += rss.get(p) ?? 0;
    stack.push(...(kids.get(p) ?? []));
  }
  return total;
}

/**
 * `selfdev merge CFG OUT --json --overwrite` as a child process (bin/selfdev.mjs under `root`): the
 * merge's own seconds (its JSON summary), the wall seconds and the peak RSS of its process tree
 * (sandbox child included), sampled every 50 ms. Rejects with the end of stderr on a non-zero exit.
 */
export function runSelfdevMerge(root: string, cfgFile: string, out: string): Promise<{ seconds: number; wallSeconds: number; peakRss: number }> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(root, 'bin', 'selfdev.mjs'), 'merge', cfgFile, out, '--json', '--overwrite'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, child.pid ? treeRss(child.pid) : 0)), 50);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => {
      clearInterval(timer);
      if (code !== 0) return rej(new Error(`selfdev merge ${cfgFile} exited with ${code}: ${stderr.slice(-2000)}`));
      const j = JSON.parse(stdout.trim().split('\n').pop()!) as { seconds: number };
      res({ seconds: j.seconds, wallSeconds: (performance.now() - t0) / 1000, peakRss: peak });
    });
  });
}
