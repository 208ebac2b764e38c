/**
 * The launcher examples (examples/slurm, examples/k8s) are checked here without a cluster: the
 * sbatch script's syntax and resource lines, the Kubernetes manifests' structure, and every worker
 * command line through the CLI's own option parser (so a renamed or misspelled option fails here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { parseWorkerArgs } from '../cli/worker.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const read = (p: string) => readFileSync(REPO + p, 'utf8');

/** `$(VAR)` (Kubernetes) and `"$VAR"` (shell) replaced by sample values, so the command line can be parsed. */
function expand(s: string, env: Record<string, string>): string {
  return s.replace(/"?\$\{?\(?([A-Z_]+)\)?\}?"?/g, (m, k: string) => {
    const v = env[k];
    if (v === undefined) throw new Error(`no sample value for ${k} in ${s}`);
    return v;
  });
}

test('examples/slurm/workers.sbatch: valid bash, an array of tasks with --mem set, a worker command line the CLI accepts', () => {
  const text = read('examples/slurm/workers.sbatch');
  const syntax = spawnSync('bash', ['-n', REPO + 'examples/slurm/workers.sbatch'], { encoding: 'utf8' });
  assert.equal(syntax.status, 0, syntax.stderr);
  const sbatch = new Map(text.split('\n').filter((l) => l.startsWith('#SBATCH ')).map((l) => {
    const [k, v] = l.slice('#SBATCH '.length).split('=');
    return [k!.trim(), v?.trim() ?? ''];
  }));
  assert.match(sbatch.get('--mem') ?? '', /^\d+[KMGT]?$/, '--mem is set (SLURM otherwise gives a task the whole node or refuses it)');
  assert.match(sbatch.get('--array') ?? '', /^\d+-\d+$/);
  const prefix = 'exec node "$SELFDEV_HOME/bin/selfdev.mjs" worker ';
  const exec = text.split('\n').find((l) => l.startsWith(prefix));
  assert.ok(exec, 'the script execs the worker (so scancel\'s SIGTERM reaches it)');
  const args = expand(exec.slice(prefix.length), { SELFDEV_QUEUE: 'redis://:pw@head:6379/0', SELFDEV_ROOT: '/shared/selfdev' }).split(/\s+/);
  const o = parseWorkerArgs(args);
  assert.deepEqual(o, { url: 'redis://:pw@head:6379/0', root: '/shared/selfdev', concurrency: 1, exitWhenIdleSec: 300 });
});

test('examples/k8s: Redis with appendonly, noeviction and a password behind a Service; a worker Job whose command line the CLI accepts and points at that Service', () => {
  const docs = [...parseAllDocuments(read('examples/k8s/redis.yaml')), ...parseAllDocuments(read('examples/k8s/workers.yaml'))].map((d) => {
    assert.deepEqual(d.errors, []);
    return d.toJS() as { kind: string; metadata: { name: string }; spec: any };
  });
  const kinds = docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
  assert.deepEqual(kinds, ['Deployment/selfdev-redis', 'Job/selfdev-workers', 'Service/selfdev-redis']);
  const redis = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0];
  const rargs: string[] = redis.args;
  const flag = (k: string) => rargs[rargs.indexOf(k) + 1];
  assert.equal(flag('--appendonly'), 'yes');
  assert.equal(flag('--maxmemory-policy'), 'noeviction');
  assert.equal(flag('--requirepass'), '$(REDIS_PASSWORD)');
  const svc = docs.find((d) => d.kind === 'Service')!;
  const port = svc.spec.ports[0].port as number;
  const job = docs.find((d) => d.kind === 'Job')!;
  assert.ok(job.spec.parallelism >= 1);
  const pod = job.spec.template.spec;
  assert.ok(pod.terminationGracePeriodSeconds >= 30, 'time to finish the current job after SIGTERM');
  const c = pod.containers[0];
  assert.ok(c.resources?.limits?.memory, 'a memory limit');
  assert.deepEqual(c.command.slice(0, 3), ['node', 'bin/selfdev.mjs', 'worker']);
  const env = Object.fromEntries((c.env as { name: string }[]).map((e) => [e.name, 'sample-password']));
  const o = parseWorkerArgs((c.command as string[]).slice(3).map((a) => expand(a, env)));
  const u = new URL(o.url);
  assert.equal(u.hostname, svc.metadata.name, 'the queue URL names the Redis Service');
  assert.equal(Number(u.port), port);
  assert.equal(u.password, 'sample-password', 'the queue URL carries the password');
  assert.equal(o.root, c.workingDir);
  assert.ok(o.exitWhenIdleSec !== undefined, 'workers exit when idle, so the Job completes');
});
