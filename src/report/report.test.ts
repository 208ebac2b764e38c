import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunStore } from '../store/store.ts';
import { writeReport } from './report.ts';
import { fillSyntheticRun, XSS_CODE, XSS_MESSAGE } from '../../test/fixtures/report/synthetic-run.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHARTS = ['distribution', 'progress', 'validity', 'controls', 'dpo-loss', 'dpo-margin', 'dpo-accuracy', 'timings'];

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'selfdev-report-'));
}

function fullRun(): { dir: string; store: RunStore; xssHash: string; html: string; out: string } {
  const dir = tmp();
  const store = RunStore.open(join(dir, 'run'));
  const { xssHash } = fillSyntheticRun(store, { seed: 3 });
  const out = join(dir, 'run', 'report.html');
  const html = writeReport(store, out, { generatedAt: '2026-01-01T00:00:00.000Z' });
  return { dir, store, xssHash, html, out };
}

function partialRun(): { dir: string; out: string } {
  const dir = tmp();
  const store = RunStore.open(join(dir, 'run'));
  store.createRun({ name: 'partial', config: { iterations: 3 }, seed: 5, evalConfig: { dev: 100 } });
  const it = store.startIteration({ t: 1, temperature: 1.2, nTarget: 60 });
  const a = store.addSample({ iterationId: it.id, code: 'function mergeModels(s) { return s; }' }).hash;
  store.addSample({ iterationId: it.id, code: 'function mergeModels(s) { return nope; }' });
  store.recordEvaluation({ hash: a, verdict: 'ok', devSubset: 0.4 });
  const out = join(dir, 'run', 'report.html');
  writeReport(store, out);
  store.close();
  return { dir, out };
}

test('report HTML is self-contained and escapes untrusted program text', () => {
  const { dir, store, xssHash, html, out } = fullRun();
  assert.equal(readFileSync(out, 'utf8'), html);
  assert.ok(xssHash, 'the fixture includes the XSS program');
  // Exactly one script element (our constant one); the program's script tags appear only escaped.
  assert.equal(html.match(/<script\b/gi)?.length, 1);
  assert.ok(!html.includes('<script>alert'), 'raw script tag from a program');
  assert.ok(!html.includes('<img src=x'), 'raw img tag from a program');
  assert.ok(html.includes('&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(html.includes('ReferenceError: &lt;script&gt;alert(&quot;msg&quot;)&lt;/script&gt; is not defined'));
  // No external resources.
  assert.ok(!/\b(src|href)\s*=\s*["']?(https?:)?\/\//i.test(html), 'external URL in src/href');
  assert.ok(!/@import|url\(\s*["']?https?:/i.test(html));
  for (const c of CHARTS) assert.ok(html.includes(`data-chart="${c}"`), `chart ${c} missing`);
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('empty and partial runs render with "not yet" placeholders', () => {
  const dir = tmp();
  const empty = RunStore.open(join(dir, 'empty'));
  const html = writeReport(empty, join(dir, 'empty', 'report.html'));
  empty.close();
  assert.match(html, /No run recorded yet/);
  const p = partialRun();
  const ph = readFileSync(p.out, 'utf8');
  assert.match(ph, /<h1>partial<\/h1>/);
  assert.match(ph, /Not yet: no dev-tuned Task Arithmetic test score yet|no dev-tuned Task Arithmetic test score yet/);
  assert.match(ph, /has no test score yet/);
  assert.match(ph, /Not yet: no baseline, control or repeat results\./);
  assert.match(ph, /Not yet: no DPO training steps recorded\./);
  assert.match(ph, /Not yet: no out-of-domain transfer results\./);
  assert.match(ph, /not evaluated yet 1/, 'pending programs are shown in the validity chart');
  rmSync(dir, { recursive: true, force: true });
  rmSync(p.dir, { recursive: true, force: true });
});

const skipReason = !existsSync(CHROMIUM) && !process.env.CI ? `skipped: ${CHROMIUM} is absent (install the Debian chromium package; in CI this test always runs)` : false;

test('report renders in headless Chromium: no errors, charts drawn, leaderboard rows, XSS shown as text', { skip: skipReason, timeout: 90_000 }, async (t) => {
  const { chromium } = await import('playwright-core');
  const { dir, store, html: _html, out } = fullRun();
  const profile = mkdtempSync(join(tmpdir(), 'selfdev-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
  });
  try {
    const errors: string[] = [];
    const dialogs: string[] = [];
    const external: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
      external.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(`file://${out}`, { waitUntil: 'load' });

    for (const c of CHARTS) {
      const marks = await page.locator(`svg[data-chart="${c}"]`).evaluate((svg) => svg.querySelectorAll('circle, rect, path').length);
      assert.ok(marks > 0, `chart ${c} has no marks`);
    }
    // The distribution chart draws one dot per distinct valid program of each arm (repeat 0).
    const validDistinct = store.iterationSummary({ repeatIndex: 0 }).reduce((a, s) => a + s.screenScores.length, 0);
    assert.equal(await page.locator('svg[data-chart="distribution"] circle').count(), validDistinct + 3 /* legend dots */);

    const expected = store.leaderboard(15, { arm: 'dpo', repeatIndex: 0 });
    const rows = page.locator('table.leaderboard tbody tr');
    assert.equal(await rows.count(), expected.length);
    assert.equal(expected.length, 15);
    const firstRow = await rows.nth(0).innerText();
    assert.ok(firstRow.includes(expected[0].hash.slice(0, 10)), firstRow);
    assert.ok(firstRow.includes(`${(expected[0].devStrict! * 100).toFixed(1)}%`), firstRow);

    // The XSS program is in the leaderboard and shows as text; nothing executed, no element injected.
    const xssCode = page.locator('.programs pre code', { hasText: 'alert(1)' });
    assert.equal(await xssCode.count(), 1);
    assert.equal(await xssCode.textContent(), XSS_CODE);
    assert.equal(await page.locator('script').count(), 1);
    assert.equal(await page.locator('img').count(), 0);
    assert.equal(await page.locator('b', { hasText: 'bold?' }).count(), 0);
    assert.equal(await page.locator('td.msg', { hasText: XSS_MESSAGE }).count(), 1);

    // The leaderboard link opens the program's code; pressing Copy works without errors.
    await rows.nth(0).locator('a.prog-link').click();
    const details = page.locator(`details#p-${expected[0].hash}`);
    assert.equal(await details.evaluate((e) => e.hasAttribute('open')), true);
    assert.equal(await details.locator('pre code').textContent(), expected[0].code);
    const button = details.locator('button.copy');
    await button.click();
    await page.waitForFunction((b) => b.textContent !== 'Copy', await button.elementHandle());
    assert.match((await button.textContent()) ?? '', /Copied|Select/);

    assert.deepEqual(dialogs, []);
    assert.deepEqual(external, []);
    assert.deepEqual(errors, []);
    const png = join(tmpdir(), 'selfdev-report-screenshot.png');
    await page.screenshot({ path: png, fullPage: true });
    t.diagnostic(`screenshot: ${png}`);

    // Partial run: also renders without errors.
    const p = partialRun();
    await page.goto(`file://${p.out}`, { waitUntil: 'load' });
    assert.ok((await page.locator('p.empty').count()) >= 4);
    assert.ok((await page.locator('svg[data-chart="validity"] rect').count()) > 0);
    assert.deepEqual(errors, []);
    rmSync(p.dir, { recursive: true, force: true });
  } finally {
    await context.close();
    store.close();
    rmSync(profile, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
