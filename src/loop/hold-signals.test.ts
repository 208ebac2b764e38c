/**
 * Under `selfdev worker` (SELFDEV_WORKER_CHILD=1) a forked evaluation worker ignores SIGTERM from
 * before its modules load (hold-signals.mjs, preloaded by ForkPool): scancel signals every process
 * of a job, and a child killed while it loads fails the job its parent was told to finish (seen on a
 * real SLURM cluster: src/distributed/slurm.itest.ts). Without the variable, SIGTERM kills it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveProcesses, makeTempDir } from '../io/testing.ts';
import { ForkPool } from './fork-pool.ts';

const tmp = makeTempDir('selfdev-hold-signals-');
process.on('exit', () => tmp.cleanup());
// a worker whose loading takes 1.5 s (like the evaluation worker importing the engine and the world);
// its module writes a file named after its pid first (the preloads have run by then)
const worker = join(tmp.path, 'slow-worker.mts');
writeFileSync(worker, `import { writeFileSync } from 'node:fs';\nimport { serveJobs } from ${JSON.stringify(new URL('./fork-pool.ts', import.meta.url).href)};\nwriteFileSync(${JSON.stringify(tmp.path)} + '/loading-' + process.pid, '');\nawait new Promise((r) => setTimeout(r, 1500));\nserveJobs('slow worker', async () => 0, async (_s: number, j: number) => j * 2);\n`);

/** Resolves once worker `pid` runs its own module (after the preloads), still loading. */
async function loading(pid: number): Promise<void> {
  for (let i = 0; !existsSync(join(tmp.path, `loading-${pid}`)); i++) {
    assert.ok(i < 3000, 'the worker module starts within 30 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function childOf(pool: ForkPool<number, number, number>): Promise<number> {
  pool.start();
  for (let i = 0; i < 200; i++) {
    const c = liveProcesses().find((p) => p.ppid === process.pid && p.args.includes(worker));
    if (c) return c.pid;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the worker process did not appear');
}

const poolOf = () => new ForkPool<number, number, number>(1, { worker, init: 0, name: 'slow worker', maxAttempts: 1, onGiveUp: (_j, d) => new Error(`died: ${JSON.stringify(d)}`) });

test('SELFDEV_WORKER_CHILD=1: a forked worker SIGTERMed while it loads keeps loading and answers its job', async () => {
  process.env.SELFDEV_WORKER_CHILD = '1';
  const pool = poolOf();
  try {
    const pid = await childOf(pool);
    delete process.env.SELFDEV_WORKER_CHILD;
    await loading(pid);
    process.kill(pid, 'SIGTERM'); // still loading: the module waits 1.5 s before serving
    assert.equal(await pool.run(21), 42);
    assert.ok(liveProcesses().some((p) => p.pid === pid), 'the same process answered');
  } finally {
    delete process.env.SELFDEV_WORKER_CHILD;
    await pool.close();
  }
});

test('without SELFDEV_WORKER_CHILD: SIGTERM ends a loading worker (the loop\'s own pools stop on it)', async () => {
  const pool = poolOf();
  try {
    const pid = await childOf(pool);
    await loading(pid);
    process.kill(pid, 'SIGTERM');
    await assert.rejects(pool.run(1), /exited while loading|died/);
  } finally {
    await pool.close();
  }
});
