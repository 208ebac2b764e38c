import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunStore } from '../store/store.ts';
import { writeReport } from './report.ts';
import { fillSyntheticRun, XSS_CODE, XSS_MESSAGE } from '../../test/fixtures/report/synthetic-run.ts';
import { chromiumSkip, launchChromium } from './testing.ts';

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
  assert.match(ph, /Not yet: no program has a selection-split score/);
  rmSync(dir, { recursive: true, force: true });
  rmSync(p.dir, { recursive: true, force: true });
});

test('report renders in headless Chromium: no errors, charts drawn, leaderboard rows, XSS shown as text', { skip: chromiumSkip, timeout: 90_000 }, async (t) => {
  const { dir, store, html: _html, out } = fullRun();
  const { context, page, errors, close } = await launchChromium();
  try {
    const dialogs: string[] = [];
    const external: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
      external.push(url);
      return route.abort();
    });
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
    await close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('choosing the best: the program chosen on the selection split, the best by dev and by test, rank correlations with n, dev-vs-test scatter', () => {
  const dir = tmp();
  try {
    const store = RunStore.open(join(dir, 'run'));
    store.createRun({ name: 'choose', config: { topKTest: 2, selectTopK: 3 }, seed: 1, evalConfig: { dev: 200 } });
    const it = store.startIteration({ t: 1 });
    // six programs, ranks 1..6 by dev; the top 3 on select (rank 3 best there); all on test (as with eval.testAll)
    const dev = [0.6, 0.55, 0.5, 0.45, 0.4, 0.35];
    const select = [0.3, 0.4, 0.5, null, null, null];
    const testS = [0.6, 0.7, 0.55, 0.2, 0.5, 0.5];
    const hashes = dev.map((_, i) => store.addSample({ iterationId: it.id, code: `function merge(tv) { return tv[${i}]; }` }).hash);
    hashes.forEach((hash, i) => store.recordEvaluation({ hash, verdict: 'ok', devSubset: dev[i], devStrict: dev[i], selectStrict: select[i], testStrict: testS[i] }));
    store.updateIteration(it.id, { status: 'done' });
    store.setRunStatus('done');
    const html = writeReport(store, join(dir, 'run', 'report.html'));
    store.close();
    const section = html.slice(html.indexOf('<section id="choosing">'), html.indexOf('</section>', html.indexOf('<section id="choosing">')));
    assert.ok(section.length > 0, 'the section exists');
    const row = (choice: string) => section.match(new RegExp(`<tr[^>]*data-choice="${choice}">(.*?)</tr>`))?.[1] ?? '';
    // chosen on select = rank 3 (dev 50.0, select 50.0, test 55.0); best by dev = rank 1; best test among the top 2 = rank 2
    assert.match(row('select'), new RegExp(`${hashes[2]!.slice(0, 10)}.*?<td class="num">3</td><td class="num">50\\.0%</td><td class="num">50\\.0%</td><td class="num">55\\.0%</td>`));
    assert.match(row('dev'), new RegExp(`${hashes[0]!.slice(0, 10)}.*?<td class="num">1</td><td class="num">60\\.0%</td><td class="num">30\\.0%</td><td class="num">60\\.0%</td>`));
    assert.match(row('test'), new RegExp(`${hashes[1]!.slice(0, 10)}.*?<td class="num">2</td><td class="num">55\\.0%</td><td class="num">40\\.0%</td><td class="num">70\\.0%</td>`));
    assert.match(section, /best test among the top 2 by dev/);
    // Spearman by hand: dev vs test over 6 (test ties at 0.5 share rank 2.5): Σ products 13, squares 17.5 and 17 → 13/√297.5 = 0.7537;
    // dev vs select over the 3 scored: ranks reversed → −1; select vs test: d = −1, −1, 2 → 1 − 6·6/24 = −0.5
    const pair = (name: string) => section.match(new RegExp(`<tr data-pair="${name}"><td>${name}</td><td class="num">([^<]*)</td><td class="num">(\\d+)</td></tr>`))?.slice(1);
    assert.deepEqual(pair('dev vs test'), ['0.754', '6']);
    assert.deepEqual(pair('dev vs select'), ['−1.000', '3']);
    assert.deepEqual(pair('select vs test'), ['−0.500', '3']);
    // scatter: one point per program with dev and test; the chosen and the best-by-dev are marked
    assert.equal(section.match(/<circle class="pt/g)?.length, 6);
    assert.equal(section.match(/<circle class="pt marked"/g)?.length, 2);
    assert.match(section, /data-chart="dev-test"/);
    // the headline reports the chosen program, and the paper's row over the configured top 2
    assert.match(html, new RegExp(`<div class="big">55\\.0%</div><div class="small">test accuracy \\(strict\\) of the best program <code>${hashes[2]!.slice(0, 10)}</code>, chosen on the selection split`));
    assert.match(html, /best test score among the top 2 by dev\): 70\.0% — optimistic/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
