/**
 * The progress line of a process on stderr, shared by everything that reports progress (the loop's
 * line, DPO and training steps, the merge bar), so they take turns on one line.
 *
 * - On a terminal: one line redrawn in place — carriage return, the text (cut to the width), then
 *   "clear to end of line", so a shorter line never leaves the tail of a longer one. Redraws at most
 *   every 100 ms unless forced.
 * - Otherwise (CI logs, nohup, a SLURM job; the stream is not a TTY): nothing is redrawn. A phase
 *   prints one plain line; updates print a heartbeat line (elapsed time and the latest status) at most
 *   every 15 s, also from a timer while nothing updates (the loop waiting on its workers).
 *
 * Plain lines start with the time since the line was created, e.g. `[2m05s] iter 1: evaluating 48 programs`.
 */

/** The part of a stream the status line uses (process.stderr, or a fake one in tests). */
export interface StatusStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface StatusLineOptions {
  /** Minimum time between two heartbeat lines when the stream is not a terminal (default 15 s). */
  heartbeatMs?: number;
  /** Minimum time between two redraws on a terminal (default 100 ms). */
  redrawMs?: number;
  /** Clock in ms (default performance.now). */
  now?: () => number;
  /** Run the heartbeat timer (default true; tests drive `tick()` instead). */
  timer?: boolean;
}

export class StatusLine {
  private readonly heartbeatMs: number;
  private readonly redrawMs: number;
  private readonly now: () => number;
  private readonly useTimer: boolean;
  private readonly start: number;
  private lastDraw = -Infinity;
  private lastPrint = -Infinity;
  private latest = '';
  private drawn = false;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly stream: StatusStream = process.stderr, o: StatusLineOptions = {}) {
    this.heartbeatMs = o.heartbeatMs ?? 15_000;
    this.redrawMs = o.redrawMs ?? 100;
    this.now = o.now ?? (() => performance.now());
    this.useTimer = o.timer ?? true;
    this.start = this.now();
  }

  /** Whether the stream is a terminal (read on every call: a test may switch it). */
  get tty(): boolean {
    return this.stream.isTTY === true;
  }

  /** The current status: redrawn on a terminal; elsewhere a heartbeat line when 15 s have passed since the last line. */
  update(text: string, force = false): void {
    this.latest = text;
    if (this.tty) {
      const t = this.now();
      if (!force && t - this.lastDraw < this.redrawMs) return;
      this.lastDraw = t;
      const cols = this.stream.columns ?? 100;
      this.stream.write(`\r${text.slice(0, Math.max(1, cols - 1))}\x1b[K`);
      this.drawn = true;
      return;
    }
    this.armTimer();
    this.tick();
  }

  /** A new phase: on a terminal the line shows it at once; elsewhere it is printed as a plain line. */
  phase(text: string): void {
    if (this.tty) {
      this.update(text, true);
      return;
    }
    this.latest = text;
    this.armTimer();
    this.print(text);
  }

  /** A line to keep (e.g. the end of a phase): printed on its own line on a terminal too. */
  line(text: string): void {
    if (this.tty) {
      this.stream.write(`\r${text}\x1b[K\n`);
      this.drawn = false;
      this.lastDraw = -Infinity;
      return;
    }
    this.latest = '';
    this.print(text);
  }

  /** The heartbeat: prints the latest status when the stream is not a terminal and 15 s have passed. */
  tick(): void {
    if (this.tty || !this.latest) return;
    if (this.now() - this.lastPrint >= this.heartbeatMs) this.print(this.latest);
  }

  /** Erases the line on a terminal and stops the heartbeat; the next update starts again. */
  clear(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.latest = '';
    if (this.tty && this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }

  private print(text: string): void {
    this.lastPrint = this.now();
    this.stream.write(`[${formatSeconds((this.lastPrint - this.start) / 1000)}] ${text}\n`);
  }

  private armTimer(): void {
    if (!this.useTimer || this.timer) return;
    this.timer = setInterval(() => this.tick(), Math.max(250, Math.floor(this.heartbeatMs / 5)));
    this.timer.unref(); // never keeps the process alive
  }
}

let shared: StatusLine | null = null;

/** The process's status line on stderr (one for the whole process, so its users take turns). */
export function stderrStatus(): StatusLine {
  shared ??= new StatusLine(process.stderr);
  return shared;
}

/** `1 step`, `3 steps`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
