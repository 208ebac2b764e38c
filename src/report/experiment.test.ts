import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ArmSummary, ExperimentSummary, RunSummary } from './summary.ts';
import { writeExperimentReport } from './experiment.ts';

const CHROMIUM = '/usr/bin/chromium';
const XSS = '<script>alert(1)</script>';

function summary(): ExperimentSummary {
  const arms = ['dpo', 'random', 'evolution'] as const;
  const runs: RunSummary[] = arms.flatMap((arm, ai) =>
    [0, 1, 2].map((k) => ({
      arm, repeat: k, seed: 100 + k, dir: `${arm}/r${k}`, status: k === 2 && arm === 'random' ? 'interrupted' : 'done',
      bestBySelect: { hash: `sel${ai}${k}0123456789`, dev: 0.48, select: 0.4 + 0.01 * k, test: 0.33 + 0.1 * ai + 0.02 * k },
      bestByDev: { hash: `${XSS}${ai}${k}abcdef`, dev: 0.5 + 0.05 * k, select: 0.39, test: 0.3 + 0.1 * ai + 0.02 * k },
      bestByTestTopK: { hash: `h${ai}${k}`, dev: 0.45, select: null, test: 0.35 + 0.1 * ai + 0.02 * k },
      topK: 5, taTest: 0.31, seedTest: 0.1, transfer: { topTest: [0.3, 0.32 + 0.01 * ai, 0.34], oodTaTest: 0.3 },
      rank: { devTest: { rho: ai === 2 && k === 0 ? null : 0.5 + 0.1 * k, n: 8 }, devSelect: { rho: 0.2, n: 5 }, selectTest: { rho: 0.3, n: 5 } },
      iterations: [1, 2, 3].map((t) => ({ t, medianDev: 0.1 * t + 0.01 * ai, bestDev: 0.2 * t, passRate: 0.8, nValid: 8, nSampled: 10 })),
    })),
  );
  const est = (values: number[]) => ({ values, mean: values.reduce((a, b) => a + b, 0) / values.length, ci: { lo: Math.min(...values), hi: Math.max(...values) } });
  const perArm: ArmSummary[] = arms.map((arm) => {
    const rs = runs.filter((r) => r.arm === arm);
    return {
      arm, repeats: 3, finished: rs.filter((r) => r.status === 'done').length,
      testBestBySelect: est(rs.map((r) => r.bestBySelect!.test!)),
      marginBySelectVsTa: est(rs.map((r) => r.bestBySelect!.test! - r.taTest!)),
      diffVsDpoBySelect: arm === 'dpo' ? null : est([0.2, 0.22, 0.18]),
      testBestByDev: est(rs.map((r) => r.bestByDev!.test!)),
      testBestByTestTopK: est(rs.map((r) => r.bestByTestTopK!.test!)),
      devBestByDev: est(rs.map((r) => r.bestByDev!.dev!)),
      taTest: est(rs.map((r) => r.taTest!)),
      diffVsDpo: arm === 'dpo' ? null : est([0.1, 0.12, 0.08]),
      rankDevTest: est(rs.flatMap((r) => (r.rank.devTest.rho === null ? [] : [r.rank.devTest.rho]))),
      transferMarginVsOodTa: est(rs.map((r) => r.transfer.topTest.reduce((a, b) => a + b, 0) / 3 - r.transfer.oodTaTest!)),
      transferBest: est(rs.map((r) => Math.max(...r.transfer.topTest))),
      medianDevByIteration: [1, 2, 3].map((t) => ({ t, mean: 0.1 * t, values: rs.map((r) => r.iterations[t - 1]!.medianDev!) })),
      passRate: 0.8,
    };
  });
  return { name: `exp ${XSS}`, seed: 7, arms: [...arms], repeats: 3, budget: { iterations: 3, samplesPerIteration: 10, topKTest: 5, selectTopK: 4, factory: 'corpus' }, runs, perArm };
}

test('experiment report: self-contained, escaped, one row per arm and per run with links', () => {
  const dir = mkdtempSync(join(tmpdir(), 'selfdev-exp-report-'));
  try {
    const out = join(dir, 'report.html');
    const html = writeExperimentReport(summary(), out, { generatedAt: '2026-01-01T00:00:00.000Z' });
    assert.equal(readFileSync(out, 'utf8'), html);
    assert.ok(!/<script\b/i.test(html), 'no script element at all; program-controlled text appears escaped');
    assert.ok(html.includes('exp &lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(!/\b(src|href)\s*=\s*["']?(https?:)?\/\//i.test(html), 'no external URL');
    assert.equal(html.match(/<tr data-arm=/g)!.length, 3 + 9);
    assert.equal(html.match(/href="(dpo|random|evolution)\/r\d\/report\.html"/g)!.length, 9);
    assert.match(html, /paper protocol, optimistic/);
    assert.match(html, /corpus generator: it has no trainer/, 'the corpus-factory caveat is shown');
    // transfer column: dpo's top 3 on the OOD experts average 32.0% against OOD TA 30.0% → +2.0 points in every repeat
    assert.match(html, /out-of-domain experts − OOD dev-tuned TA/);
    assert.match(html, /<tr data-arm="dpo">[\s\S]*?<span class="mean">\+2\.0<\/span><div class="ci">95% CI \[\+2\.0, \+2\.0\]/);
    // means with their intervals: dpo best-by-dev test = mean(0.30, 0.32, 0.34) = 32.0%, CI [30.0%, 34.0%]
    assert.match(html, /<tr data-arm="dpo">[\s\S]*?<span class="mean">32\.0%<\/span><div class="ci">95% CI \[30\.0%, 34\.0%\]/);
    assert.match(html, /<tr data-arm="random">[\s\S]*?\+10\.0[\s\S]*?95% CI \[\+8\.0, \+12\.0\]/);
    // the headline is the best program chosen on the selection split: dpo test = mean(0.33, 0.35, 0.37) = 35.0%, first cell after "runs done";
    // then its margin over Task Arithmetic (0.31): +2, +4, +6 points; for random, the paired difference to DPO by select: +20.0 [+18.0, +22.0]
    const armRow = (arm: string) => html.match(new RegExp(`<tr data-arm="${arm}">([\\s\\S]*?)</tr>`))![1]!;
    const cells = (arm: string) => [...armRow(arm).matchAll(/<td class="num[^"]*"[^>]*>([\s\S]*?)<\/td>/g)].map((m) => m[1]!);
    assert.equal(cells('dpo')[0], '3 / 3');
    assert.match(cells('dpo')[1]!, /^<span class="mean">35\.0%<\/span><div class="ci">95% CI \[33\.0%, 37\.0%\]/);
    assert.match(cells('dpo')[2]!, /^<span class="mean">\+4\.0<\/span><div class="ci">95% CI \[\+2\.0, \+6\.0\]/);
    assert.match(cells('random')[3]!, /^<span class="mean">\+20\.0<\/span><div class="ci">95% CI \[\+18\.0, \+22\.0\]/);
    assert.match(cells('dpo')[4]!, /^<span class="mean">32\.0%<\/span><div class="ci">95% CI \[30\.0%, 34\.0%\]/, 'the best-by-dev column is kept');
    // Spearman dev vs test per run: dpo 0.50, 0.60, 0.70 → mean 0.60; evolution has one run where it is undefined (n = 2 values)
    assert.match(armRow('dpo'), /<span class="mean">0\.60<\/span><div class="ci">95% CI \[0\.50, 0\.70\]<\/div><div class="vals">n = 3: 0\.50, 0\.60, 0\.70/);
    assert.match(armRow('evolution'), /<div class="vals">n = 2: 0\.60, 0\.70/);
    // runs table: the chosen program, its select and test scores, and ρ with its n
    assert.match(html, /<tr data-arm="dpo" data-repeat="1">[\s\S]*?<code>sel010123456<\/code><\/td><td class="num">48\.0%<\/td><td class="num">41\.0%<\/td><td class="num">35\.0%<\/td>[\s\S]*?<td class="num">0\.60 <span class="ci">n = 8<\/span><\/td>/);
    assert.match(html, /<tr data-arm="evolution" data-repeat="0">[\s\S]*?<td class="num na">— <span class="ci">n = 8<\/span><\/td>/);
    assert.match(html, /top 4 by dev re-scored on the selection split/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const skipReason = !existsSync(CHROMIUM) && !process.env.CI ? `skipped: ${CHROMIUM} is absent (install the Debian chromium package; in CI this test always runs)` : false;

test('experiment report renders in headless Chromium: charts drawn, links resolve, no errors', { skip: skipReason, timeout: 90_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(join(tmpdir(), 'selfdev-exp-report-'));
  const profile = mkdtempSync(join(tmpdir(), 'selfdev-chromium-'));
  const s = summary();
  const out = join(dir, 'report.html');
  writeExperimentReport(s, out);
  for (const r of s.runs) {
    mkdirSync(join(dir, r.dir), { recursive: true });
    writeFileSync(join(dir, r.dir, 'report.html'), `<!doctype html><title>${r.dir}</title><h1>${r.dir}</h1>`);
  }
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
  });
  try {
    const errors: string[] = [];
    const external: string[] = [];
    const dialogs: string[] = [];
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
    // test-by-arm: one dot per repeat per arm; median-dev: one dot per (arm, iteration) + legend lines
    assert.equal(await page.locator('svg[data-chart="test-by-arm"] circle').count(), 9);
    assert.equal(await page.locator('svg[data-chart="test-by-arm"] path.whisker').count(), 3);
    assert.equal(await page.locator('svg[data-chart="median-dev"] circle').count(), 9);
    assert.equal(await page.locator('svg[data-chart="median-dev"] path.line').count(), 3);
    assert.equal(await page.locator('table.arms tbody tr').count(), 3);
    assert.equal(await page.locator('table.runs tbody tr').count(), 9);
    // the XSS name is shown as text
    assert.equal(await page.locator('h1').innerText(), `exp ${XSS}: DPO against its controls`);
    // every run link resolves to that run's page
    const hrefs = await page.locator('table.runs a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    assert.equal(hrefs.length, 9);
    await page.locator('table.runs tbody tr[data-arm="evolution"][data-repeat="1"] a').click();
    await page.waitForURL(/evolution\/r1\/report\.html$/);
    assert.equal(await page.locator('h1').innerText(), 'evolution/r1');
    assert.deepEqual(errors, []);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(external, []);
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  }
});
