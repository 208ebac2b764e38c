/**
 * The progress of `selfdev run` / `selfdev start` on the process's status line (src/io/status.ts):
 * iteration, evaluations done, pass rate, dev best/median and ETA while candidates are scored; the
 * phase (sampling, evaluating, DPO, the final select / test / baselines / transfer) as it starts.
 * On a terminal it is one line redrawn in place; elsewhere each phase is a plain line and the
 * evaluation counts come as a heartbeat at most every 15 s.
 */
import type { LoopEvent } from '../loop/controller.ts';
import { formatSeconds, stderrStatus, type StatusLine } from '../io/status.ts';

export interface RunProgress {
  onEvent: (e: LoopEvent) => void;
  /** Put before every line (an experiment's "arm rK  "). */
  prefix: string;
  /** Forget the counts (the next run of an experiment). */
  reset: () => void;
  /** Erase the line (before the result is printed). */
  clear: () => void;
}

export function makeRunProgress(line: StatusLine = stderrStatus()): RunProgress {
  const start = performance.now();
  let t = 0;
  let total = 0;
  let done = 0;
  let nFresh = 0;
  let freshMs = 0;
  let lastFresh = performance.now();
  let valid = 0;
  let evaluated = 0;
  let scores: number[] = [];
  let phase = '';
  /** The last evaluation line, and the queue's state after it (distributed evaluation). */
  let last = '';
  let queue = '';
  const self: RunProgress = {
    prefix: '',
    reset: () => {
      t = total = done = nFresh = freshMs = valid = evaluated = 0;
      last = '';
      scores = [];
      phase = '';
      lastFresh = performance.now();
    },
    clear: () => line.clear(),
    onEvent: (e: LoopEvent) => {
      if (e.type === 'iteration') {
        t = e.t;
        done = 0;
        total = 0;
        nFresh = 0;
        freshMs = 0;
        phase = '';
        line.phase(`${self.prefix}iter ${t}: sampling programs (T ${e.temperature.toFixed(2)})`);
        return;
      }
      if (e.type === 'sampled') {
        total = e.n;
        line.phase(`${self.prefix}iter ${t}: evaluating ${e.n} sampled programs`);
        return;
      }
      if (e.type === 'phase') {
        phase = e.phase;
        line.phase(`${self.prefix}final: ${phase}`);
        return;
      }
      if (e.type === 'done') {
        line.phase(`${self.prefix}done`);
        return;
      }
      if (e.type === 'queue') {
        queue = `  queue: ${e.waiting} queued, ${e.active} active, ${e.completed} done, ${e.failed} failed, ${e.workers} worker${e.workers === 1 ? '' : 's'}`;
        if (last) line.update(last + queue, false);
        return;
      }
      total = e.total;
      done = e.done;
      evaluated++;
      if (e.verdict === 'ok') valid++;
      if (e.score !== null) scores.push(e.score);
      const now = performance.now();
      if (!e.cached) {
        nFresh++;
        freshMs += now - lastFresh;
      }
      lastFresh = now;
      const sorted = [...scores].sort((a, b) => a - b);
      const best = sorted.length ? (100 * sorted[sorted.length - 1]!).toFixed(1) : '-';
      const med = sorted.length ? (100 * sorted[Math.floor((sorted.length - 1) / 2)]!).toFixed(1) : '-';
      const eta = nFresh > 0 && total > done ? formatSeconds(((freshMs / nFresh) * (total - done)) / 1000) : '?';
      const rate = evaluated ? ((100 * valid) / evaluated).toFixed(0) + '%' : '-';
      last = self.prefix + (phase ? `final: ${phase}  ${done}/${total}  elapsed ${formatSeconds((now - start) / 1000)}` : `iter ${t}  ${done}/${total}  pass ${rate}  dev best ${best} median ${med}  iteration ETA ${eta}`);
      line.update(last + queue, done === total);
    },
  };
  return self;
}
