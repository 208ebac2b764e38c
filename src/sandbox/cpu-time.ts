/**
 * CPU-time accounting of the sandbox, so that a verdict does not depend on machine load.
 *
 * A program is charged the CPU time of the sandbox child process (user + system, all threads;
 * the child does nothing else while it runs a program) from the moment its code starts. The only
 * way to interrupt pure JS is isolated-vm's `timeout`, which is wall time, so execute.ts runs an
 * attempt with a wall timeout a little above the CPU limit; if that fires while the program has
 * used less CPU than its limit, the process was starved by other load, which is not a verdict:
 * the program runs again from scratch in a fresh isolate with a larger wall timeout, up to a
 * wall-clock backstop of `backstopFactor` × the CPU limit. The parent (sandbox.ts) kills the child
 * by the child's CPU time too (read from /proc), with the wall clock only as a far backstop.
 */
import { readFileSync } from 'node:fs';

/** CPU time of this process in microseconds (user + system). */
export function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Wall-clock interval between two reads of the CPU clock by CpuBudget.exceeded() (ms). */
const CHECK_EVERY_MS = 1;

/** The CPU budget of one attempt, started when the program's code starts. */
export class CpuBudget {
  private readonly startUs = cpuMicros();
  private nextCheck = 0;
  constructor(readonly limitMs: number) {}

  /** CPU time used since the start (ms). */
  usedMs(): number {
    return (cpuMicros() - this.startUs) / 1000;
  }

  /**
   * Whether the CPU used exceeds the limit. Reads the clock (a system call) at most once per
   * CHECK_EVERY_MS of wall time, so thousands of cheap ops do not pay for it; the overshoot is
   * at most that much CPU.
   */
  exceeded(): boolean {
    const now = performance.now();
    if (now < this.nextCheck) return false;
    this.nextCheck = now + CHECK_EVERY_MS;
    return this.usedMs() > this.limitMs;
  }
}

/**
 * Wall timeout of the first attempt: the CPU limit plus a little, so that on an idle machine a
 * program that never stops has used its whole CPU limit when the timer fires (a verdict at once,
 * no retry).
 */
export function firstWallMs(timeoutMs: number): number {
  return Math.ceil(timeoutMs * 1.05 + 25);
}

/** Wall-clock backstop of one run (all attempts together bounded by about twice this). */
export function backstopWallMs(timeoutMs: number, backstopFactor: number): number {
  return Math.max(firstWallMs(timeoutMs), Math.ceil(timeoutMs * backstopFactor));
}

/**
 * Wall timeout of the next attempt after one starved at `wallMs` having used only `cpuMs` of CPU:
 * aims at 1.25 × the CPU limit at the CPU share just observed, growing 2× to 8×, capped at the
 * backstop; null when the backstop was already reached.
 */
export function nextWallMs(wallMs: number, cpuMs: number, timeoutMs: number, backstopFactor: number): number | null {
  const cap = backstopWallMs(timeoutMs, backstopFactor);
  if (wallMs >= cap) return null;
  const factor = Math.min(8, Math.max(2, (1.25 * timeoutMs) / Math.max(cpuMs, 1)));
  return Math.min(cap, Math.ceil(wallMs * factor));
}

/** Most attempts one run can take (every retry at least doubles the wall timeout). */
export function maxAttempts(timeoutMs: number, backstopFactor: number): number {
  let n = 1;
  for (let w: number | null = firstWallMs(timeoutMs); (w = nextWallMs(w, timeoutMs, timeoutMs, backstopFactor)) !== null; ) n++;
  return n;
}

/**
 * CPU time (ms, user + system, all threads) a process has used, from /proc/<pid>/stat; null when
 * it cannot be read (no /proc, or the process is gone). Linux reports it in USER_HZ = 100 ticks.
 */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses; utime and stime are fields 14 and 15
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return Number.isFinite(ticks) ? ticks * 10 : null;
  } catch {
    return null;
  }
}
