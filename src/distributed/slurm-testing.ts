/**
 * A private single-node SLURM cluster for tests, started for real from Debian's packages (munge,
 * slurmctld, slurmd, slurm-client) and torn down by pid: munged with its own key, socket and files;
 * slurmctld and slurmd in the foreground from a generated slurm.conf (free ports, state and spool
 * folders in `dir`, no cgroups: proctrack/linuxproc, task/none); one node, this machine, with the
 * CPUs and memory `slurmd -C` reports. Clients (sbatch, squeue, scancel) find it through SLURM_CONF.
 * Every daemon runs as root (SlurmUser=root), the way CI runs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './testing.ts';

/** Where Debian puts the daemons (not always on a non-root PATH). */
const SBIN = ['/usr/sbin', '/usr/local/sbin', '/sbin'];
const NEEDED = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scancel', 'sinfo'];

/** The path of a SLURM or munge program, or null. */
function which(name: string): string | null {
  for (const d of [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SBIN]) if (existsSync(join(d, name))) return join(d, name);
  return null;
}

/** Why a private cluster cannot start here (missing programs, not root), or null. */
export function slurmMissing(): string | null {
  const missing = NEEDED.filter((n) => !which(n));
  if (missing.length) return `${missing.join(', ')} not found; install them (Debian: apt-get install slurmctld slurmd slurm-client munge)`;
  if (process.getuid?.() !== 0) return 'the private SLURM cluster runs its daemons as root (SlurmUser=root); run the test as root';
  return null;
}

export interface SlurmCluster {
  /** The generated slurm.conf; clients get it through `env.SLURM_CONF`. */
  conf: string;
  env: NodeJS.ProcessEnv;
  node: string;
  /** What the node offers (from `slurmd -C`). */
  cpus: number;
  memoryMb: number;
  /** Runs a client (sbatch, squeue, scancel, sinfo) against this cluster; throws with its output when it fails. */
  client(cmd: string, args: string[], o?: { env?: NodeJS.ProcessEnv; cwd?: string }): string;
  /** Array task ids (`JOB_TASK`) with their state, as squeue lists them. */
  jobs(): { id: string; state: string }[];
  /** Pids of munged, slurmctld, slurmd. */
  pids(): number[];
  /** Cancels every job, waits for them to leave the queue, stops the daemons by pid (SIGTERM, then SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** The daemons' logs (for failure messages). */
  logs(): string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts the cluster in `dir` (created); resolves once the node is idle and takes jobs. */
export async function startSlurm(dir: string): Promise<SlurmCluster> {
  const why = slurmMissing();
  if (why) throw new Error(`the SLURM test needs a private single-node cluster: ${why}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const bin = (n: string) => which(n)!;
  const children: { name: string; child: ChildProcess; out: string[] }[] = [];
  const launch = (name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv) => {
    const child = spawn(bin(cmd), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: string[] = [];
    child.stdout!.on('data', (d) => out.push(String(d)));
    child.stderr!.on('data', (d) => out.push(String(d)));
    children.push({ name, child, out });
    return child;
  };
  const logs = () => children.map((c) => `--- ${c.name} (pid ${c.child.pid}, exit ${c.child.exitCode ?? c.child.signalCode ?? 'running'})\n${c.out.join('').slice(-4000)}`).join('\n');
  const stopAll = async () => {
    for (const c of [...children].reverse()) {
      if (c.child.exitCode !== null || c.child.signalCode !== null) continue;
      const exited = new Promise((r) => c.child.once('exit', r));
      process.kill(c.child.pid!, 'SIGTERM');
      const t = setTimeout(() => c.child.exitCode === null && c.child.signalCode === null && process.kill(c.child.pid!, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
  };
  const onExit = () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  };
  process.on('exit', onExit);

  try {
    // munge: its own key, socket, pid, seed and log files (the daemon checks that their folder is private)
    const m = join(dir, 'munge');
    mkdirSync(m, { mode: 0o700 });
    writeFileSync(join(m, 'munge.key'), randomBytes(1024), { mode: 0o600 });
    const socket = join(m, 'munge.socket');
    // --force: munged refuses some setups as root without it (it only warns then)
    launch('munged', 'munged', ['--foreground', '--force', `--socket=${socket}`, `--key-file=${join(m, 'munge.key')}`, `--pid-file=${join(m, 'munged.pid')}`, `--seed-file=${join(m, 'munged.seed')}`, `--log-file=${join(m, 'munged.log')}`], process.env);
    for (let i = 0; !existsSync(socket); i++) {
      if (i > 100 || children[0]!.child.exitCode !== null) throw new Error(`munged did not create its socket in 10 s`);
      await sleep(100);
    }

    // the node as slurmd sees it: "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    const probe = spawnSync(bin('slurmd'), ['-C'], { encoding: 'utf8' });
    const nodeLine = probe.stdout.split('\n').find((l) => l.startsWith('NodeName='));
    if (probe.status !== 0 || !nodeLine) throw new Error(`slurmd -C failed: ${probe.stderr}${probe.stdout}`);
    const field = (k: string) => new RegExp(`\\b${k}=(\\S+)`).exec(nodeLine)?.[1];
    const node = field('NodeName')!;
    const cpus = Number(field('CPUs'));
    const memoryMb = Number(field('RealMemory'));
    const hw = ['CPUs', 'Boards', 'SocketsPerBoard', 'CoresPerSocket', 'ThreadsPerCore', 'RealMemory'].map((k) => `${k}=${field(k)}`).join(' ');
    const [ctldPort, dPort] = [await freePort(), await freePort()];
    for (const d of ['state', 'spool', 'log']) mkdirSync(join(dir, d), { mode: 0o700 });
    const conf = join(dir, 'slurm.conf');
    writeFileSync(
      conf,
      [
        'ClusterName=selfdevtest',
        `SlurmctldHost=${node}(127.0.0.1)`,
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${dPort}`,
        'SlurmUser=root',
        'SlurmdUser=root',
        'AuthType=auth/munge',
        'CredType=cred/munge',
        `AuthInfo=socket=${socket}`,
        `StateSaveLocation=${join(dir, 'state')}`,
        `SlurmdSpoolDir=${join(dir, 'spool')}`,
        `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
        `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
        `SlurmctldLogFile=${join(dir, 'log', 'slurmctld.log')}`,
        `SlurmdLogFile=${join(dir, 'log', 'slurmd.log')}`,
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        'JobCompType=jobcomp/none',
        'MpiDefault=none',
        'MailProg=/bin/true',
        'SchedulerType=sched/backfill',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_Core_Memory',
        'ReturnToService=2',
        'KillWait=30',
        'InactiveLimit=0',
        `NodeName=${node} NodeAddr=127.0.0.1 ${hw} State=UNKNOWN`,
        `PartitionName=test Nodes=${node} Default=YES MaxTime=INFINITE State=UP`,
        '',
      ].join('\n'),
    );
    const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };
    launch('slurmctld', 'slurmctld', ['-D', '-i'], env);
    await sleep(500);
    launch('slurmd', 'slurmd', ['-D', '-N', node], env);

    const client = (cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) => {
      const r = spawnSync(bin(cmd), args, { encoding: 'utf8', env: { ...env, ...o.env, SLURM_CONF: conf }, cwd: o.cwd, timeout: 30_000 });
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status ?? r.signal}: ${r.error?.message ?? ''}${r.stderr}${r.stdout}`);
      return r.stdout;
    };
    // ready when the node is idle (slurmd registered with slurmctld)
    for (let i = 0; ; i++) {
      for (const c of children) if (c.child.exitCode !== null) throw new Error(`${c.name} exited at start (code ${c.child.exitCode})`);
      let state = '';
      try {
        state = client('sinfo', ['-h', '-N', '-o', '%T']).trim();
      } catch {
        // slurmctld not listening yet
      }
      if (state === 'idle') break;
      if (i > 150) throw new Error(`the SLURM node is not idle after 30 s (state: ${JSON.stringify(state)})`);
      await sleep(200);
    }

    const jobs = () =>
      client('squeue', ['-h', '-r', '-o', '%i %T'])
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [id, state] = l.trim().split(/\s+/);
          return { id: id!, state: state! };
        });
    return {
      conf,
      env,
      node,
      cpus,
      memoryMb,
      client,
      jobs,
      pids: () => children.map((c) => c.child.pid!),
      logs: () => {
        const files = ['slurmctld.log', 'slurmd.log'].map((f) => join(dir, 'log', f)).filter(existsSync);
        return logs() + files.map((f) => `\n--- ${f}\n${readFileSync(f, 'utf8').slice(-4000)}`).join('');
      },
      stop: async () => {
        try {
          if (jobs().length) {
            client('scancel', ['--full', '-u', 'root']);
            for (let i = 0; i < 200 && jobs().length; i++) await sleep(200);
          }
        } catch {
          // the controller is gone already: the daemons are stopped below anyway
        }
        await stopAll();
        process.removeListener('exit', onExit);
      },
    };
  } catch (e) {
    const msg = `${(e as Error).message}\n${logs()}`;
    await stopAll();
    process.removeListener('exit', onExit);
    throw new Error(msg);
  }
}
