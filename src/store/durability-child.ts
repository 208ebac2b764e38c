// Test helper for store.test.ts: inserts programs and evaluations one transaction at a time and prints
// "committed <hash>" after each commit returns, until killed. Usage: tsx durability-child.ts <runDir>
import { RunStore } from './store.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: durability-child.ts <runDir>');
const store = RunStore.open(dir);
if (!store.getRun()) store.createRun({ name: 'kill-test', config: {}, seed: 1, evalConfig: { dev: 'x' } });
const it = store.startIteration({ t: 1, temperature: 1.2 });
process.stdout.write('ready\n');
for (let i = 0; ; i++) {
  const hash = store.transaction(() => {
    const { hash } = store.addSample({ iterationId: it.id, code: `function merge(a) { return a; } // ${process.pid} ${i} ${'x'.repeat(i % 500)}` });
    store.recordEvaluation({ hash, verdict: i % 3 === 0 ? 'runtime' : 'ok', devSubset: (i % 100) / 100, message: i % 3 === 0 ? `boom ${i}` : null });
    return hash;
  });
  process.stdout.write(`committed ${hash}\n`);
}
