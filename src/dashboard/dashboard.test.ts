// The live dashboard in headless Chromium (the real browser, started for real): it follows a real
// run from an empty folder to the finished report, and a missing or corrupted store gives a clear
// page, not a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { Page } from 'playwright-core';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { makeMicroWorld } from '../world/testing.ts';
import { startDashboard } from './server.ts';
import { chromiumSkip, launchChromium } from '../report/testing.ts';

// page-side code (run in Chromium by page.evaluate); the project compiles without the DOM library
declare const document: any, window: any;

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'bin', 'selfdev.mjs');

/** Spawns `selfdev ARGS` and resolves with the first stdout line matching `re`. */
function startCli(args: string[], re: RegExp): { child: ChildProcess; match: Promise<RegExpExecArray>; exit: Promise<number | null>; output: () => string } {
  const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const match = new Promise<RegExpExecArray>((ok, fail) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = re.exec(out);
      if (m) ok(m);
    });
    child.once('exit', (code) => fail(new Error(`selfdev ${args[0]} exited (${code}) before printing ${re}:\n${out}`)));
  });
  child.stderr!.on('data', (b: Buffer) => void (out += b.toString()));
  const exit = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return { child, match, exit, output: () => out };
}

const live = (page: Page, key: string) => page.locator(`#live [data-live="${key}"]`).textContent();

test('dashboard follows a real run in Chromium: waiting page, numbers rising as candidates are scored, then exactly the finished report.html', { skip: chromiumSkip, timeout: 300_000 }, async (t) => {
  const tmp = makeTempDir('selfdev-dashboard-');
  const b = await launchChromium();
  let dash: ReturnType<typeof startCli> | null = null;
  let run: ReturnType<typeof startCli> | null = null;
  try {
    const w = await makeMicroWorld(join(tmp.path, 'world'), { nExperts: 2, nOod: 1, nDev: 8, nTest: 4, trainSteps: 60 });
    const out = join(tmp.path, 'run');
    // the dashboard first, on a folder where no run has started
    dash = startCli(['dashboard', out, '--port', '0', '--interval', '100'], /(http:\/\/127\.0\.0\.1:\d+\/)/);
    const url = (await dash.match)[1]!;
    await b.page.goto(url, { waitUntil: 'load' });
    assert.equal(await live(b.page, 'state'), 'waiting for a run');
    assert.match((await b.page.locator('#report h2').textContent()) ?? '', /No run store yet/);
    // record every value the page shows for "scored" (a DOM observer, as a user would see them)
    // (a string: functions defined inside would be renamed by the TypeScript loader, which the page lacks)
    await b.page.evaluate(`(() => {
      const seen = [];
      window.seen = seen;
      new MutationObserver(() => {
        const q = (k) => (document.querySelector('#live [data-live="' + k + '"]') || {}).textContent || '';
        seen.push({ scored: Number(q('scored')), phase: q('phase'), state: q('state'), at: Date.now() });
      }).observe(document.getElementById('live'), { childList: true, subtree: true, characterData: true });
    })()`);

    const cfg = join(tmp.path, 'run.yml');
    writeFileSync(cfg, stringify({
      name: 'live', seed: 1, workers: 1, iterations: 2, samplesPerIteration: 8, tensorFilter: 'all',
      eval: { devSubset: 8, maxTokens: 24, batchSize: 8 }, topKTest: 3, selectTopK: 3, baselines: { lambdas: [0.5, 1.0] },
      world: { ...w, algorithms: 'algorithms', example: 'algorithms/task_arithmetic.js' },
    }));
    run = startCli(['run', cfg, '--out', out], /^report: /m);
    assert.equal(await run.exit, 0, run.output());
    await b.page.waitForFunction(() => document.querySelector('#live [data-live="state"]')?.textContent === 'finished', null, { timeout: 30_000 });

    const seen = await b.page.evaluate(() => (window as unknown as { seen: { scored: number; phase: string; state: string; at: number }[] }).seen);
    const store = RunStore.open(out, { readonly: true });
    const total = store.iterationSummary().reduce((a, s) => a + s.nEvaluated, 0);
    store.close();
    assert.equal(total, 2 * 8);
    const values = [...new Set(seen.filter((s) => s.state === 'running').map((s) => s.scored))];
    t.diagnostic(`"scored" values the page showed while running: ${values.join(', ')}`);
    assert.deepEqual(values, [...values].sort((x, y) => x - y), 'the count only rises');
    assert.ok(values.length >= 3, `the page showed at least 3 different counts while the run went on: ${values.join(', ')}`);
    assert.ok(values.some((v) => v > 0 && v < total), 'counts between none and all were shown');
    assert.ok(seen.some((s) => /: scoring candidates$/.test(s.phase)), `the phase "scoring candidates" was shown: ${[...new Set(seen.map((s) => s.phase))].join(' | ')}`);
    assert.equal(await live(b.page, 'scored'), String(total));

    // delay from a candidate's score written to the store to the page showing it (the server checks every 100 ms)
    const updates = await b.page.evaluate(() => (window as unknown as { selfdevDashboard: { updates: { appliedAt: number; lastWrite: string | null; state: string; scored: number }[] } }).selfdevDashboard.updates);
    const lat = updates
      .filter((u, i) => u.lastWrite && u.state === 'running' && i > 0 && u.scored > updates[i - 1]!.scored)
      .map((u) => u.appliedAt - Date.parse(u.lastWrite!))
      .sort((x, y) => x - y);
    assert.ok(lat.length >= 3, `updates while running: ${lat.length}`);
    t.diagnostic(`store write → page: median ${lat[Math.floor(lat.length / 2)]} ms, max ${lat[lat.length - 1]} ms over ${lat.length} updates`);

    // the finished run's page shows exactly its report.html (header and every section)
    const content = (p: Page, sel: string) => p.evaluate((s) => [...document.querySelectorAll(s)].map((e) => e.outerHTML).join('\n'), sel);
    const fromDashboard = await content(b.page, '#report > header.top, #report > main');
    const report = await b.context.newPage();
    await report.goto(`file://${join(out, 'report.html')}`, { waitUntil: 'load' });
    const fromReport = await content(report, 'body > header.top, body > main');
    assert.ok(fromReport.includes('status-done'), 'report.html shows the finished run');
    assert.equal(fromDashboard, fromReport);
    assert.ok((await b.page.locator('#report svg[data-chart="distribution"] circle').count()) > 3, 'the charts are drawn');
    assert.equal(await b.page.locator('#report table.leaderboard tbody tr').count(), Math.min(15, await report.locator('table.leaderboard tbody tr').count()));
    await b.page.screenshot({ path: join(tmpdir(), 'selfdev-dashboard-live.png'), fullPage: false });
    assert.deepEqual(b.errors, []);
  } finally {
    run?.child.kill();
    dash?.child.kill('SIGINT');
    if (dash) assert.equal(await dash.exit, 0, 'the dashboard stops cleanly on Ctrl-C');
    await b.close();
    tmp.cleanup();
  }
});

test('dashboard with a missing, corrupted or truncated store: a clear page, the server stays up, and a good store is shown once it is there', { skip: chromiumSkip, timeout: 120_000 }, async () => {
  const tmp = makeTempDir('selfdev-dashboard-bad-');
  const b = await launchChromium();
  const runDir = join(tmp.path, 'run');
  const d = await startDashboard({ runDir, port: 0, intervalMs: 100 });
  try {
    // missing: the folder does not exist
    await b.page.goto(d.url, { waitUntil: 'load' });
    assert.equal(await live(b.page, 'state'), 'waiting for a run');
    assert.match((await b.page.locator('#report').innerText()) ?? '', /No run store yet[\s\S]*the folder does not exist yet[\s\S]*selfdev run CONFIG\.yml --out/);
    assert.ok(!existsSync(runDir), 'the dashboard creates nothing');

    // corrupted: not an SQLite file at all
    mkdirSync(runDir);
    writeFileSync(join(runDir, 'run.sqlite'), 'this is not a database '.repeat(400));
    await b.page.waitForFunction(() => document.querySelector('#live [data-live="state"]')?.textContent === 'store unreadable', null, { timeout: 10_000 });
    assert.match((await b.page.locator('#report h2').textContent()) ?? '', /The run store cannot be read/);
    assert.match((await b.page.locator('[data-live="error"]').textContent()) ?? '', /file is not a database/);
    const res = await fetch(`${d.url}state`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: { state: string } }).status.state, 'error');

    // replaced by a good store: the page shows the run without a reload
    rmSync(join(runDir, 'run.sqlite'));
    const good = join(tmp.path, 'good');
    const s = RunStore.open(good);
    s.createRun({ name: 'recovered', config: { iterations: 2 }, seed: 3, evalConfig: { dev: 1 } });
    const it = s.startIteration({ t: 1, temperature: 1.2, nTarget: 2 });
    const h = s.addSample({ iterationId: it.id, code: 'function merge(tv) { return tv[0]; }' }).hash;
    s.recordEvaluation({ hash: h, verdict: 'ok', devSubset: 0.25 });
    s.close();
    copyFileSync(join(good, 'run.sqlite'), join(runDir, 'run.sqlite'));
    await b.page.waitForFunction(() => document.querySelector('#report h1')?.textContent === 'recovered', null, { timeout: 10_000 });
    assert.equal(await live(b.page, 'state'), 'running');
    assert.equal(await live(b.page, 'scored'), '1');

    // truncated mid-file (a broken copy): a clear page again, never a crash
    truncateSync(join(runDir, 'run.sqlite'), Math.floor(statSync(join(runDir, 'run.sqlite')).size / 3));
    await b.page.waitForFunction(() => document.querySelector('#live [data-live="state"]')?.textContent === 'store unreadable', null, { timeout: 10_000 });
    assert.match((await b.page.locator('[data-live="error"]').textContent()) ?? '', /malformed|not a database|no such table/);
    assert.deepEqual(b.errors, []);
    // the server answered throughout
    const status = async (url: string, method = 'GET') => {
      const r = await fetch(url, { method });
      await r.text();
      return r.status;
    };
    assert.equal(await status(d.url), 200);
    assert.equal(await status(`${d.url}nope`), 404);
    assert.equal(await status(d.url, 'POST'), 405);
  } finally {
    await d.close();
    await b.close();
    tmp.cleanup();
  }
});

test('selfdev dashboard: usage errors name the problem; a port in use is a clear error', async () => {
  const { command } = await import('../cli/dashboard.ts');
  await assert.rejects(command.run([]), /expected RUN_DIR/);
  await assert.rejects(command.run(['x', '--port', '99999']), /--port must be at most 65535, got 99999/);
  await assert.rejects(command.run(['x', '--interval', '5']), /--interval must be an integer >= 50, got '5'/);
  const tmp = makeTempDir('selfdev-dashboard-port-');
  const d = await startDashboard({ runDir: tmp.path, port: 0 });
  try {
    await assert.rejects(command.run([tmp.path, '--port', String(d.port)]), new RegExp(`port ${d.port} on 127\\.0\\.0\\.1 is in use; pass another --port \\(0 picks a free one\\)`));
  } finally {
    await d.close();
    tmp.cleanup();
  }
});
