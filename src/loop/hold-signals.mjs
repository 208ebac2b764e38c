// Preloaded first into every forked worker (fork-pool.ts), before the TypeScript loader and the
// worker's modules, which take seconds to load. Under `selfdev worker` (SELFDEV_WORKER_CHILD=1) the
// evaluation children ignore SIGTERM/SIGINT from the first moment: a scheduler (scancel, a pod's
// eviction) signals every process of the job, and the parent decides when to stop; a child exits
// when its parent does. Plain JavaScript so that it runs before the loader is registered.
if (process.env.SELFDEV_WORKER_CHILD === '1') for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => undefined);
