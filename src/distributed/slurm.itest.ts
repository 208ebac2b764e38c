/**
 * The SLURM launcher for real (opt-in: `npm run test:slurm`; docs/distributed.md says why it is not
 * in `npm test`): a private single-node cluster (munged, slurmctld, slurmd from Debian's packages,
 * slurm-testing.ts), a private redis-server, the controller as `selfdev run … --queue URL` on the
 * micro world, and the workers started only by `sbatch examples/slurm/workers.sbatch` (the shipped
 * file, parametrised by its environment variables and sbatch options). Asserts: the same scores per
 * program as a local `workers: 2` run; a worker cancelled mid-job with `scancel` (SIGTERM) finishes
 * that job, takes no other and exits, and the run finishes on the other task; `scancel --signal=TERM`
 * stops the other gracefully; nothing left running (daemons, jobs, workers) afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { liveProcesses } from '../io/testing.ts';
import { runSnapshot } from '../loop/testing.ts';
import { startSlurm, type SlurmCluster } from './slurm-testing.ts';
import { distributedFixture, dupes, queueCounts, startedJobs } from './testing.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLE = join(REPO, 'examples', 'slurm', 'workers.sbatch');
const fx = distributedFixture('slurm');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The lines of a worker's SLURM output file (empty until the task writes it). */
const linesOf = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []);

async function waitFor<T>(what: string, probe: () => T | undefined | false, ms: number, context: () => string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms\n${context()}`);
    await sleep(100);
  }
}

/** Summed resident memory (MiB) of the process trees of the live workers with this --root. */
function workerTreesRssMb(root: string): number[] {
  const ps = liveProcesses();
  const rss = (pid: number) => {
    try {
      return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    } catch {
      return 0;
    }
  };
  const tree = (pid: number): number => rss(pid) + ps.filter((p) => p.ppid === pid).reduce((s, p) => s + tree(p.pid), 0);
  return ps.filter((p) => p.args.includes(' worker ') && p.args.includes(`--root ${root}`)).map((p) => tree(p.pid));
}

test('SLURM: workers from `sbatch examples/slurm/workers.sbatch` on a private single-node cluster score the run like a local workers: 2 run; scancel stops them gracefully; nothing is left running', { timeout: 15 * 60_000 }, async () => {
  const stepdBefore = new Set(liveProcesses().filter((p) => p.args.startsWith('slurmstepd')).map((p) => p.pid));
  const t0 = performance.now();
  const ref = await fx.local();
  const tLocal = performance.now() - t0;
  const t1 = performance.now();
  const cluster: SlurmCluster = await startSlurm(join(fx.tmp, 'slurm'));
  const tUp = performance.now() - t1;
  const daemons = cluster.pids();
  const logs = join(fx.tmp, 'worker-logs');
  mkdirSync(logs); // sbatch --output does not create folders (the task fails without it)
  let ctlOut = '';
  let ctl: ChildProcess | null = null;
  let sampler: NodeJS.Timeout | undefined;
  try {
    const url = await fx.db(1);
    const runDir = join(fx.tmp, 'slurm-run');
    const cfgPath = join(fx.root, 'slurm-run.json');
    writeFileSync(cfgPath, JSON.stringify(await fx.config()));

    // the workers: only through sbatch of the shipped script; two tasks must fit the node side by side
    assert.ok(cluster.cpus >= 2, `two worker tasks side by side need 2 CPUs; the node has ${cluster.cpus}`);
    const cpusPerTask = Math.floor(cluster.cpus / 2);
    const memMb = Math.min(4096, Math.floor(cluster.memoryMb / 2));
    const submit = performance.now();
    const sb = cluster.client('sbatch', ['--parsable', '--array=0-1', `--cpus-per-task=${cpusPerTask}`, `--mem=${memMb}M`, `--output=${logs}/worker-%A_%a.log`, EXAMPLE], {
      cwd: REPO, // the submit folder is the selfdev folder (SELFDEV_HOME's default)
      env: { SELFDEV_QUEUE: url, SELFDEV_ROOT: fx.root, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` },
    });
    const jobId = sb.trim().split(';')[0]!;
    assert.match(jobId, /^\d+$/, `sbatch --parsable printed ${sb}`);
    const log = (k: number) => join(logs, `worker-${jobId}_${k}.log`);
    const context = () => `${[0, 1].map((k) => `--- task ${k}\n${linesOf(log(k)).join('\n')}`).join('\n')}\n--- controller\n${ctlOut}\n--- squeue\n${JSON.stringify(cluster.jobs())}\n${cluster.logs()}`;
    await waitFor('both array tasks running, their workers waiting for a controller', () => cluster.jobs().filter((j) => j.id.startsWith(`${jobId}_`) && j.state === 'RUNNING').length === 2 && [0, 1].every((k) => linesOf(log(k)).some((l) => /waiting for a controller/.test(l))), 120_000, context);
    const tRunning = performance.now() - submit;

    // the controller: `selfdev run CONFIG --out DIR --queue URL` in the run root
    ctl = spawn(process.execPath, [join(REPO, 'bin', 'selfdev.mjs'), 'run', cfgPath, '--out', runDir, '--queue', url], { cwd: fx.root, stdio: ['ignore', 'pipe', 'pipe'] });
    ctl.stdout!.on('data', (d) => (ctlOut += d));
    ctl.stderr!.on('data', (d) => (ctlOut += d));
    const c0 = ctl;
    const ctlExit = new Promise<number | null>((r) => c0.once('exit', (code) => r(code)));
    const tRun0 = performance.now();
    let peakMb = 0;
    sampler = setInterval(() => (peakMb = Math.max(peakMb, ...workerTreesRssMb(fx.root), 0)), 200);

    // task 0 is cancelled (plain scancel: SIGTERM to the task) while it runs a job
    const startLine = await waitFor('task 0 starts a job', () => linesOf(log(0)).find((l) => / job \S+ start /.test(l)), 120_000, context);
    const cancelledJob = / job (\S+) start /.exec(startLine)![1]!;
    cluster.client('scancel', [`${jobId}_0`]);
    await waitFor('task 0 exits', () => linesOf(log(0)).some((l) => / exited$/.test(l)), 60_000, context);
    const l0 = linesOf(log(0));
    const stopAt = l0.findIndex((l) => /stopping: no new jobs; finishing the running ones/.test(l));
    assert.ok(stopAt >= 0, `task 0 took SIGTERM as a graceful stop:\n${l0.join('\n')}`);
    assert.ok(l0.slice(stopAt).some((l) => new RegExp(` job ${cancelledJob} done `).test(l)), `task 0 finished the job it was running (${cancelledJob}):\n${l0.join('\n')}`);
    assert.ok(!l0.slice(stopAt).some((l) => / job \S+ start /.test(l)), 'task 0 took no job after SIGTERM');
    await waitFor('task 0 leaves the queue', () => !cluster.jobs().some((j) => j.id === `${jobId}_0`), 60_000, context);

    // the run finishes on task 1
    const code = await ctlExit;
    clearInterval(sampler);
    const tRun = performance.now() - tRun0;
    assert.equal(code, 0, `the controller finished:\n${context()}`);
    assert.match(ctlOut, /best \(chosen on the selection split\)/);
    assert.deepEqual(runSnapshot(runDir), ref, 'the same scores per program as a local workers: 2 run');
    const a = startedJobs(linesOf(log(0)));
    const b = startedJobs(linesOf(log(1)));
    assert.ok(b.length > 0, 'task 1 took jobs');
    assert.deepEqual(dupes([...a, ...b]), [], 'no job ran twice');
    const c = await queueCounts(url);
    assert.equal(c.failed, 0);
    assert.equal(c.completed, a.length + b.length, 'every job in the queue ran once, on one of the two tasks');

    // task 1: the graceful variant (scancel --signal=TERM: signal only, the task ends by itself)
    cluster.client('scancel', ['--signal=TERM', '--full', `${jobId}_1`]);
    await waitFor('task 1 exits', () => linesOf(log(1)).some((l) => / exited$/.test(l)), 60_000, context);
    await waitFor('task 1 leaves the queue', () => cluster.jobs().length === 0, 60_000, context);
    assert.ok(linesOf(log(1)).some((l) => /stopping: no new jobs/.test(l)));
    const restarted = [0, 1].filter((k) => linesOf(log(k)).some((l) => /the evaluation child was stopped by SIGTERM while starting; starting another/.test(l)));
    process.stdout.write(
      `# slurm: evaluation child hit by scancel's SIGTERM while starting (and replaced) on task(s) [${restarted.join(', ')}]; local workers:2 reference ${(tLocal / 1000).toFixed(1)} s; cluster up ${(tUp / 1000).toFixed(1)} s; ` +
        `sbatch → 2 tasks running ${(tRunning / 1000).toFixed(1)} s; queue run ${(tRun / 1000).toFixed(1)} s (${c.completed} jobs: ${a.length} on task 0, ${b.length} on task 1); ` +
        `peak RSS of one worker tree ${peakMb.toFixed(0)} MiB (--mem=${memMb}M, --cpus-per-task=${cpusPerTask}; node ${cluster.cpus} CPUs, ${cluster.memoryMb} MB)\n`,
    );
  } finally {
    clearInterval(sampler);
    if (ctl && ctl.exitCode === null && ctl.signalCode === null) ctl.kill('SIGKILL'); // a failed test: the controller would wait for workers forever
    const t2 = performance.now();
    await cluster.stop();
    process.stdout.write(`# slurm: teardown ${((performance.now() - t2) / 1000).toFixed(1)} s\n`);
  }
  // nothing left: the daemons, the job steps, the workers and their evaluation children
  const live = liveProcesses();
  assert.deepEqual(live.filter((p) => daemons.includes(p.pid)), [], 'munged, slurmctld, slurmd stopped');
  assert.deepEqual(live.filter((p) => p.args.startsWith('slurmstepd') && !stepdBefore.has(p.pid)), [], 'no job step left');
  const redisPid = (await fx.redisP).pid();
  assert.deepEqual(live.filter((p) => p.args.includes(fx.tmp) && p.pid !== redisPid), [], 'no process of this test left (but its redis-server, stopped below)');
  assert.ok(readdirSync(logs).length === 2);
});

test.after(async () => {
  await (await fx.redisP).stop();
});
