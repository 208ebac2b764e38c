/**
 * Evaluation worker (forked by pool.ts with tsx). On 'init' it loads the run's in-domain world, a
 * sandbox and the problem sets once (the out-of-domain world on its first OOD job), then answers
 * 'job' messages one at a time with the same `runJob` the in-process path uses. Single-threaded by
 * design: N workers share N cores.
 */
import { setThreads } from '../tensor/kernels.ts';
import { openEvalContext, runJob, type EvalContext, type FromWorker, type ToWorker } from './pool.ts';

if (!process.send) throw new Error('loop worker must be started with child_process.fork');
setThreads(1); // native merge kernels: one thread per worker (the tfjs wasm backend is single-threaded already)

const reply = (m: FromWorker) => process.send!(m);
let ctx: Promise<EvalContext> | null = null;
let chain: Promise<unknown> = Promise.resolve();

process.on('message', (m: ToWorker) => {
  if (m.type === 'init') {
    if (ctx) return;
    ctx = openEvalContext(m.cfg, m.root);
    ctx.then(
      () => reply({ type: 'ready' }),
      (e: unknown) => reply({ type: 'init-error', message: e instanceof Error ? e.message : String(e) }),
    );
    return;
  }
  if (!ctx) return reply({ type: 'job-error', id: m.id, message: 'loop worker: job before init' });
  const c = ctx;
  chain = chain.then(async () => {
    try {
      reply({ type: 'result', id: m.id, result: await runJob(await c, m.job) });
    } catch (e) {
      reply({ type: 'job-error', id: m.id, message: `loop worker: ${e instanceof Error ? e.message : String(e)}` });
    }
  });
});
// the parent is gone (or closed the pool): stop; the sandbox child exits on its own disconnect
process.on('disconnect', () => process.exit(0));
