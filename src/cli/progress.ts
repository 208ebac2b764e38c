/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal (quiet in pipes, CI and
 * tests). Redraws at most every 100 ms, on the process's shared status line (src/io/status.ts).
 */
import { StatusLine, stderrStatus, formatSeconds } from '../io/status.ts';

export class ProgressBar {
  private readonly enabled: boolean;
  private readonly start = performance.now();

  constructor(private readonly label: string, enabled = process.stderr.isTTY === true, private readonly line: StatusLine = stderrStatus()) {
    this.enabled = enabled;
  }

  /** `extra` is appended after the counts (e.g. "1.2 GB/s"). */
  update(done: number, total: number, extra = '', force = false): void {
    if (!this.enabled) return;
    const width = 28;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(frac * width);
    const elapsed = (performance.now() - this.start) / 1000;
    const eta = done > 0 && done < total ? formatSeconds((elapsed / done) * (total - done)) : '';
    this.line.update(`${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${extra ? '  ' + extra : ''}${eta ? '  ETA ' + eta : ''}`, force || done >= total);
  }

  done(message?: string): void {
    if (!this.enabled) return;
    this.line.clear();
    if (message) this.line.line(message);
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : n < 10 ? 2 : 1)} ${units[i]}`;
}
