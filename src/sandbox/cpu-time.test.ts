/**
 * The sandbox's time limit is CPU time: a program's verdict does not depend on machine load.
 * These tests make the machine busy themselves (spinning child processes, one more than twice
 * the cores) and check that a program needing about half its CPU limit still passes, that an
 * infinite loop still ends as `timeout` with a CPU-time message, and (starving the sandbox child
 * with SIGSTOP/SIGCONT) that a sandbox starved of almost all CPU gives up at its wall-clock backstop.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { backstopWallMs, firstWallMs, maxAttempts, nextWallMs, processCpuMs } from './cpu-time.ts';
import { Sandbox } from './sandbox.ts';
import type { MergeContext } from './types.ts';

const ctx: MergeContext = { name: 'model.layers.0.mlp.up_proj.weight', layer: 0, numLayers: 2, kind: 'mlp', shape: [4, 8], numModels: 2, seed: 5 };
const inputs = (): Float32Array[] => [Float32Array.from({ length: 32 }, (_, i) => i / 8 - 2), Float32Array.from({ length: 32 }, (_, i) => (i % 5) - 2)];

/** A pure-JS busy loop of n iterations, the same text in this process and in the sandbox. */
const LOOP = 'let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) | 0;';
const busyProgram = (n: number): string => `function merge(tv) { const n = ${n}; ${LOOP} return tv[0].add(tv[1]).mul(1 + 0 * (x & 1)) }`;

/** Iterations of LOOP per ms of CPU time in this process (the sandbox runs the same V8). */
function loopRate(): number {
  const run = new Function('n', `${LOOP} return x;`) as (n: number) => number;
  run(1e6); // warm up the JIT
  let n = 1e6;
  for (;;) {
    const c0 = process.cpuUsage();
    run(n);
    const c = process.cpuUsage(c0);
    const ms = (c.user + c.system) / 1000;
    if (ms > 100) return n / ms;
    n *= 4;
  }
}

/** Starts `count` processes spinning a CPU each; stop() kills them. */
async function spinners(count: number): Promise<{ stop: () => void }> {
  const kids: ChildProcess[] = [];
  for (let i = 0; i < count; i++) kids.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  const stop = (): void => {
    for (const k of kids) if (k.exitCode === null && k.signalCode === null) k.kill('SIGKILL');
  };
  try {
    // until each one has burnt some CPU (so they are really running)
    const t0 = performance.now();
    while (kids.some((k) => (k.pid === undefined ? 0 : (processCpuMs(k.pid) ?? 0)) < 20) && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
  } catch (e) {
    stop();
    throw e;
  }
  return { stop };
}

const SPINNERS = Math.min(16, 2 * availableParallelism() + 1);

test('wall timeouts of the attempts: a little above the CPU limit first, then 2× to 8×, capped at the backstop', () => {
  assert.equal(firstWallMs(1000), 1075);
  assert.equal(backstopWallMs(1000, 30), 30_000);
  assert.equal(backstopWallMs(1000, 0.5), 1075); // never below the first attempt
  // starved at a CPU share of 25 %: aim at 1.25 × the limit at that share = 5×
  assert.equal(nextWallMs(1000, 250, 1000, 30), 5000);
  assert.equal(nextWallMs(1000, 900, 1000, 30), 2000); // at least 2×
  assert.equal(nextWallMs(1000, 1, 1000, 30), 8000); // at most 8×
  assert.equal(nextWallMs(20_000, 100, 1000, 30), 30_000); // capped
  assert.equal(nextWallMs(30_000, 100, 1000, 30), null); // backstop reached
  // 1075 → 2150 → 4300 → 8600 → 17200 → 30000 at the slowest growth
  assert.equal(maxAttempts(1000, 30), 6);
  assert.equal(maxAttempts(1000, 1), 1);
});

test('processCpuMs reads a process’s CPU time from /proc (null for no such process)', () => {
  const before = processCpuMs(process.pid);
  assert.ok(before !== null && before >= 0);
  // busy until this process has used 150 ms of CPU by its own clock (however loaded the machine)
  const c0 = process.cpuUsage();
  for (let c = { user: 0, system: 0 }; (c.user + c.system) / 1000 < 150; c = process.cpuUsage(c0));
  const own = process.cpuUsage(c0);
  const after = processCpuMs(process.pid)!;
  assert.ok((own.user + own.system) / 1000 >= 150);
  // /proc counts in 10 ms ticks
  assert.ok(Math.abs(after - before - (own.user + own.system) / 1000) <= 30, `/proc: ${after - before} ms, process.cpuUsage: ${(own.user + own.system) / 1000} ms`);
  assert.equal(processCpuMs(2 ** 30), null);
});

test('under heavy machine load a program needing half its CPU limit passes, and an infinite loop still ends as a CPU-time timeout', async (t) => {
  const timeoutMs = 600;
  const n = Math.round(loopRate() * timeoutMs * 0.5);
  // a far backstop (100 × the limit): on this shared machine the spinners and other jobs left the child ~3 % of a CPU
  const sb = new Sandbox({ limits: { timeoutMs, wallMs: timeoutMs + 1000, backstopFactor: 100 } });
  await sb.start();
  const quiet = await sb.run(busyProgram(n), inputs(), ctx);
  assert.equal(quiet.ok, true, quiet.message);
  const load = await spinners(SPINNERS);
  const retries0 = sb.retries; // the quieter run may have been retried too (other load)
  try {
    const t0 = performance.now();
    const busy = await sb.run(busyProgram(n), inputs(), ctx);
    const wall = performance.now() - t0;
    t.diagnostic(`${SPINNERS} spinners: program of ${Math.round(quiet.cpuMs!)} ms CPU when quieter took ${Math.round(busy.cpuMs ?? -1)} ms CPU, ${Math.round(wall)} ms wall, ${busy.attempts} attempts`);
    assert.equal(busy.ok, true, `${busy.category}: ${busy.message}`);
    assert.deepEqual(busy.result, quiet.result);
    assert.ok(busy.cpuMs! > 0.2 * timeoutMs && busy.cpuMs! < timeoutMs, `charged ${busy.cpuMs} ms of CPU`);
    // each retry the child announced reached the parent (it extends the parent's kill budget)
    assert.equal(sb.retries - retries0, busy.attempts! - 1);
    assert.equal(sb.kills, 0);

    const loop = await sb.run('function merge(tv) { for (;;) {} }', inputs(), ctx, { timeoutMs: 200, wallMs: 1200 });
    t.diagnostic(`infinite loop: ${Math.round(loop.cpuMs ?? -1)} ms CPU, ${loop.attempts} attempts, ${Math.round(loop.ms ?? -1)} ms wall`);
    assert.equal(loop.category, 'timeout');
    assert.match(loop.message!, /CPU-time limit of 200 ms/);
    assert.ok(loop.cpuMs! >= 200);
    assert.equal(sb.kills, 0);
  } finally {
    load.stop();
    sb.close();
  }
});

test('a pure-JS infinite loop on its own ends as timeout with a CPU-time message, having used its CPU limit', async () => {
  const sb = new Sandbox({ limits: { timeoutMs: 400, wallMs: 1400 } });
  try {
    for (const src of ['while (true) {}', 'function merge(tv) { for (;;) {} }']) {
      const r = await sb.run(src, inputs(), ctx);
      assert.equal(r.category, 'timeout');
      assert.match(r.message!, /used more than its CPU-time limit of 400 ms/);
      assert.ok(r.cpuMs! >= 400, `cpu ${r.cpuMs}`);
    }
    assert.equal(sb.kills, 0);
  } finally {
    sb.close();
  }
});

/**
 * Starves process `pid` to a few % of one CPU, independent of the machine: it is stopped (SIGSTOP)
 * for `stopMs`, then continued for `runMs`, over and over. stop() leaves it running.
 */
function throttle(pid: number, runMs: number, stopMs: number): { stop: () => void } {
  let on = true;
  let timer: NodeJS.Timeout | null = null;
  const phase = (stopped: boolean): void => {
    if (!on) return;
    try {
      process.kill(pid, stopped ? 'SIGSTOP' : 'SIGCONT');
    } catch {
      on = false; // the process is gone
      return;
    }
    timer = setTimeout(() => phase(!stopped), stopped ? stopMs : runMs);
  };
  phase(true);
  return {
    stop: () => {
      on = false;
      if (timer) clearTimeout(timer);
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    },
  };
}

test('a sandbox starved of almost all CPU gives up at its wall-clock backstop with a clear message', async (t) => {
  const sb = new Sandbox({ limits: { timeoutMs: 300, wallMs: 1300, backstopFactor: 2 } });
  await sb.start();
  const starve = throttle(sb.pid!, 5, 95);
  try {
    const t0 = performance.now();
    const r = await sb.run('function merge(tv) { for (;;) {} }', inputs(), ctx);
    t.diagnostic(`starved: ${Math.round(r.cpuMs ?? -1)} ms CPU, ${r.attempts} attempts, ${Math.round(performance.now() - t0)} ms wall`);
    assert.equal(r.category, 'timeout');
    assert.match(r.message!, /wall-clock backstop of 600 ms \(2× its CPU-time limit of 300 ms\).*the machine is too loaded \(2 attempts\)/);
    assert.equal(r.attempts, 2);
    assert.ok(r.cpuMs! < 300);
    assert.equal(sb.retries, 1);
    assert.equal(sb.kills, 0);
  } finally {
    starve.stop();
    sb.close();
  }
});
