/**
 * Evaluation worker (forked by pool.ts's WorkerPool through fork-pool.ts). On 'init' it loads the
 * run's in-domain world, a sandbox and the problem sets once (the out-of-domain world on its first
 * OOD job), then answers jobs one at a time with the same `runJob` the in-process path uses.
 * Single-threaded by design: N workers share N cores.
 */
import { setThreads } from '../tensor/kernels.ts';
import { serveJobs } from './fork-pool.ts';
import { openEvalContext, runJob, type EvalContext, type EvalJob, type JobResult, type WorkerInit } from './pool.ts';

// under `selfdev worker` (src/distributed/worker.ts) this process ignores SIGTERM/SIGINT from its first
// moment (hold-signals.mjs, preloaded by fork-pool.ts): the parent decides when to stop
setThreads(1); // native merge kernels: one thread per worker (the tfjs wasm backend is single-threaded already)
serveJobs<WorkerInit, EvalContext, EvalJob, JobResult>('loop worker', (i) => openEvalContext(i.cfg, i.root), runJob);
