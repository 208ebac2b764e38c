/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal (quiet in pipes, CI and
 * tests). Redraws at most every 100 ms.
 */
export class ProgressBar {
  private last = 0;
  private readonly enabled: boolean;
  private readonly start = performance.now();

  constructor(private readonly label: string, enabled = process.stderr.isTTY === true) {
    this.enabled = enabled;
  }

  /** `extra` is appended after the counts (e.g. "1.2 GB/s"). */
  update(done: number, total: number, extra = '', force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.last < 100 && done < total) return;
    this.last = now;
    const width = 28;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(frac * width);
    const elapsed = (now - this.start) / 1000;
    const eta = done > 0 && done < total ? formatSeconds((elapsed / done) * (total - done)) : '';
    const line = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${extra ? '  ' + extra : ''}${eta ? '  ETA ' + eta : ''}`;
    const cols = process.stderr.columns ?? 100;
    process.stderr.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length + 2))}`);
  }

  done(message?: string): void {
    if (!this.enabled) return;
    process.stderr.write('\r\x1b[K' + (message ? message + '\n' : ''));
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
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
