// The comparison page of an experiment (selfdev run --arms … --repeats …): arms side by side with
// bootstrap intervals, the per-iteration median dev score per arm, and one row per run linking to
// its own report.html. Self-contained HTML (no script, no external resource); all text escaped.
import type { ArmSummary, Estimate, ExperimentSummary, RunSummary } from './summary.ts';
import { writeFileAtomic } from '../store/store.ts';
import { armColor, armLabel } from './format.ts';
import { axisBottom, axisLeft, esc, innerW, legend, n2, niceTicks, polyline, scaleLinear, svgOpen, withLegend, type Frame } from './svg.ts';

const ARM_DOC: Record<string, string> = {
  dpo: 'the Self-Developing loop: the factory is trained by DPO on its best and worst programs after each iteration.',
  random: 'every iteration samples the untrained iteration-0 factory (same N, same temperature schedule); no training.',
  evolution: 'iteration 1 as random; later iterations mutate and recombine the best programs so far by dev; no factory, no training.',
  'dpo-novel': 'DPO as in dpo, but every iteration samples until it holds N programs the run has never drawn before (at most 4 rounds of N draws).',
  'dpo-mutate': 'DPO-trained factory as the mutation operator: from iteration 2 it continues a prefix of one of the best programs so far (cut at a statement boundary); new programs only.',
};
const label = armLabel;
const color = (a: string): string => armColor(a, [a]);

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : `${(v * 100).toFixed(1)}%`);
const pts = (v: number): string => `${v >= 0 ? '+' : '−'}${(Math.abs(v) * 100).toFixed(1)}`;

function estCell(e: Estimate | null, fmt: (v: number) => string = pct): string {
  if (!e || e.mean === null) return '<td class="num na">—</td>';
  const ci = e.ci ? `<div class="ci">95% CI [${esc(fmt(e.ci.lo))}, ${esc(fmt(e.ci.hi))}]</div>` : '<div class="ci">no interval (n &lt; 2)</div>';
  return `<td class="num" data-n="${e.values.length}"><span class="mean">${esc(fmt(e.mean))}</span>${ci}<div class="vals">n = ${e.values.length}: ${esc(e.values.map(fmt).join(', '))}</div></td>`;
}

const rho = (v: number): string => `${v >= 0 ? '' : '−'}${Math.abs(v).toFixed(2)}`;

function armTable(s: ExperimentSummary): string {
  const hasDpo = s.arms.includes('dpo');
  const rows = s.perArm.map(
    (a: ArmSummary) => `<tr data-arm="${esc(a.arm)}"><th scope="row"><span class="sw" style="background:${color(a.arm)}"></span>${esc(label(a.arm))}</th>
<td class="num">${a.finished} / ${a.repeats}</td>${estCell(a.testBestBySelect)}${estCell(a.marginBySelectVsTa, pts)}${hasDpo ? (a.arm === 'dpo' ? '<td class="num na">reference</td>' : estCell(a.diffVsDpoBySelect, pts)) : ''}${estCell(a.testBestByDev)}${hasDpo ? (a.arm === 'dpo' ? '<td class="num na">reference</td>' : estCell(a.diffVsDpo, pts)) : ''}${estCell(a.testBestByTestTopK)}${estCell(a.devBestByDev)}${estCell(a.taTest)}${estCell(a.rankDevTest, rho)}${estCell(a.transferMarginVsOodTa, pts)}<td class="num">${pct(a.passRate)}</td></tr>`,
  );
  return `<table class="arms"><thead><tr><th>arm</th><th>runs done</th><th>test accuracy of the best program, chosen on the selection split (mean over repeats)</th><th>margin over dev-tuned Task Arithmetic (paired by repeat, points)</th>${hasDpo ? '<th>difference to DPO (paired by seed, points)</th>' : ''}<th>test accuracy of the best-by-dev program</th>${hasDpo ? '<th>best-by-dev: difference to DPO (points)</th>' : ''}<th>best test among the top ${s.budget.topKTest} by dev (paper protocol, optimistic)</th><th>dev score of the best-by-dev program</th><th>Task Arithmetic, dev-tuned λ (test)</th><th>Spearman ρ, dev vs test (per run)</th><th>transfer: mean test of the top 3 by dev on the out-of-domain experts − OOD dev-tuned TA (points)</th><th>valid programs (median per iteration)</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

const FRAME: Frame = { width: 760, height: 320, left: 64, right: 20, top: 34, bottom: 48 };

/** Test accuracy of the best program (chosen on the selection split): one dot per repeat, the mean as a bar, the bootstrap interval as a whisker. */
function testChart(s: ExperimentSummary): string {
  const f = FRAME;
  const vals = s.perArm.flatMap((a) => [...a.testBestBySelect.values, ...(a.testBestBySelect.ci ? [a.testBestBySelect.ci.lo, a.testBestBySelect.ci.hi] : [])]);
  const hi = Math.max(0.05, ...vals);
  const ticks = niceTicks(0, hi);
  const y = scaleLinear([0, Math.max(hi, ticks[ticks.length - 1] ?? hi)], [f.height - f.bottom, f.top]);
  const band = innerW(f) / Math.max(1, s.perArm.length);
  let out = svgOpen(f, 'test-by-arm', 'Test accuracy of the best program (chosen on the selection split) per arm (dots: repeats; bar: mean; whisker: 95% bootstrap interval)');
  out += axisLeft(f, y, ticks, 'test accuracy (strict)', (v) => `${Math.round(v * 100)}%`);
  out += axisBottom(f, s.perArm.map((a, i) => ({ x: f.left + band * (i + 0.5), label: label(a.arm) })), 'arm');
  s.perArm.forEach((a, i) => {
    const cx = f.left + band * (i + 0.5);
    const e = a.testBestBySelect;
    const col = color(a.arm);
    if (e.mean !== null) out += `<rect x="${n2(cx - band * 0.18)}" y="${n2(y(e.mean))}" width="${n2(band * 0.36)}" height="${n2(Math.max(0, y(0) - y(e.mean)))}" fill="${col}" fill-opacity="0.25"><title>${esc(label(a.arm))}: mean ${pct(e.mean)}</title></rect>`;
    if (e.ci) out += `<path class="whisker" d="M${n2(cx)} ${n2(y(e.ci.lo))} L${n2(cx)} ${n2(y(e.ci.hi))} M${n2(cx - 8)} ${n2(y(e.ci.lo))} L${n2(cx + 8)} ${n2(y(e.ci.lo))} M${n2(cx - 8)} ${n2(y(e.ci.hi))} L${n2(cx + 8)} ${n2(y(e.ci.hi))}" stroke="${col}" stroke-width="2" fill="none"><title>95% CI [${pct(e.ci.lo)}, ${pct(e.ci.hi)}]</title></path>`;
    e.values.forEach((v, j) => {
      const jx = cx + (e.values.length > 1 ? (j / (e.values.length - 1) - 0.5) * band * 0.3 : 0);
      out += `<circle cx="${n2(jx)}" cy="${n2(y(v))}" r="4" fill="${col}"><title>${esc(label(a.arm))}, repeat ${j}: ${pct(v)}</title></circle>`;
    });
  });
  return out + '</svg>';
}

/** Median dev score of the valid programs per iteration, mean over repeats, one line per arm. */
function medianChart(s: ExperimentSummary): string {
  const items = s.perArm.map((a) => ({ label: label(a.arm), color: color(a.arm), kind: 'line' as const }));
  const f = withLegend(FRAME, items);
  const ts = [...new Set(s.perArm.flatMap((a) => a.medianDevByIteration.map((m) => m.t)))].sort((a, b) => a - b);
  const vals = s.perArm.flatMap((a) => a.medianDevByIteration.flatMap((m) => m.values));
  const hi = Math.max(0.05, ...vals);
  const ticks = niceTicks(0, hi);
  const y = scaleLinear([0, Math.max(hi, ticks[ticks.length - 1] ?? hi)], [f.height - f.bottom, f.top]);
  const x = scaleLinear([Math.min(...ts, 1), Math.max(...ts, 2)], [f.left + 20, f.width - f.right - 20]);
  let out = svgOpen(f, 'median-dev', 'Median dev score of the valid programs per iteration (mean over repeats)');
  out += axisLeft(f, y, ticks, 'median dev (screen)', (v) => `${Math.round(v * 100)}%`);
  out += axisBottom(f, ts.map((t) => ({ x: x(t), label: String(t) })), 'iteration');
  for (const a of s.perArm) {
    const p = a.medianDevByIteration.filter((m) => m.mean !== null).map((m) => [x(m.t), y(m.mean!)] as [number, number]);
    out += polyline(p, color(a.arm));
    for (const m of a.medianDevByIteration) if (m.mean !== null) out += `<circle cx="${n2(x(m.t))}" cy="${n2(y(m.mean))}" r="4" fill="${color(a.arm)}"><title>${esc(label(a.arm))}, iteration ${m.t}: ${pct(m.mean)} (repeats: ${esc(m.values.map(pct).join(', '))})</title></circle>`;
  }
  out += legend(f, items);
  return out + '</svg>';
}

function runsTable(s: ExperimentSummary): string {
  const rhoCell = (c: RunSummary['rank']['devTest']) => (c.rho === null ? `<td class="num na">— <span class="ci">n = ${c.n}</span></td>` : `<td class="num">${esc(rho(c.rho))} <span class="ci">n = ${c.n}</span></td>`);
  const rows = s.runs.map(
    (r) => `<tr data-arm="${esc(r.arm)}" data-repeat="${r.repeat}"><td>${esc(label(r.arm))}</td><td class="num">${r.repeat}</td><td class="num">${esc(r.seed)}</td><td><span class="badge status-${esc(r.status)}">${esc(r.status)}</span></td>
<td><code>${esc(r.bestBySelect ? r.bestBySelect.hash.slice(0, 12) : '—')}</code></td><td class="num">${pct(r.bestBySelect?.dev)}</td><td class="num">${pct(r.bestBySelect?.select)}</td><td class="num">${pct(r.bestBySelect?.test)}</td><td><code>${esc(r.bestByDev ? r.bestByDev.hash.slice(0, 12) : '—')}</code></td><td class="num">${pct(r.bestByDev?.test)}</td><td class="num">${pct(r.bestByTestTopK?.test)}</td><td class="num">${pct(r.taTest)}</td><td class="num">${pct(r.seedTest)}</td>${rhoCell(r.rank.devTest)}
<td><a href="${esc(`${r.dir.split(/[\\/]/).map(encodeURIComponent).join('/')}/report.html`)}">${esc(r.dir)}/report.html</a></td></tr>`,
  );
  return `<table class="runs"><thead><tr><th>arm</th><th>repeat</th><th>seed</th><th>status</th><th>best program (chosen on select)</th><th>its dev</th><th>its select</th><th>its test</th><th>best program by dev</th><th>its test</th><th>best test in top ${s.budget.topKTest}</th><th>Task Arithmetic test</th><th>seed model test</th><th>Spearman ρ dev vs test</th><th>run report</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
}

export function renderExperimentReport(s: ExperimentSummary, options: { generatedAt?: string } = {}): string {
  const b = s.budget;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(s.name)} — arms compared</title>
<style>${CSS}</style></head>
<body><main>
<h1>${esc(s.name)}: ${s.arms.includes('dpo') && s.arms.length > 1 ? 'DPO against its controls' : 'arms compared'}</h1>
<p class="sub">Same budget for every arm: ${esc(b.iterations)} iterations × ${esc(b.samplesPerIteration)} programs, factory <code>${esc(b.factory)}</code>, top ${esc(b.selectTopK)} by dev re-scored on the selection split (the best there is the run's best program), top ${esc(b.topKTest)} by dev tested. ${esc(s.repeats)} repeat(s); repeat k uses the same seed in every arm (experiment seed ${esc(s.seed)}).</p>
<ul class="arms-doc">${s.arms.map((a) => `<li><b>${esc(label(a))}</b>: ${esc(ARM_DOC[a] ?? '')}</li>`).join('')}</ul>
${b.factory === 'corpus' && s.arms.includes('dpo') ? '<p class="warn">The factory is the corpus generator: it has no trainer, so the DPO arm records DPO as skipped and samples exactly like the random arm. Use a builtin, openai or llamacpp factory to measure what DPO adds.</p>' : ''}
<h2>Arms side by side</h2>
<p class="note">Headline metric: test accuracy of each run's best program, chosen on the selection split among the top programs by dev (dev screens, select chooses, test only reports); the best-by-dev columns show what choosing on dev alone gives. Intervals are percentile bootstrap 95% intervals of the mean over repeats (2,000 resamples); with few repeats they are wide and approximate. The "paper protocol" column picks the best test score among the top ${esc(b.topKTest)} by dev, which selects on test and is biased upward.</p>
${armTable(s)}
<figure>${testChart(s)}<figcaption>Dots: repeats; bar: mean; whisker: 95% bootstrap interval.</figcaption></figure>
<h2>Search progress</h2>
<figure>${medianChart(s)}<figcaption>Median dev (screening) score of the valid programs of each iteration, averaged over repeats.</figcaption></figure>
<h2>Runs</h2>
${runsTable(s)}
<footer>Generated by selfdev${options.generatedAt ? ` at ${esc(options.generatedAt)}` : ''}. Data: summary.json next to this page.</footer>
</main></body></html>
`;
}

/** Writes the comparison page atomically; returns the HTML. */
export function writeExperimentReport(s: ExperimentSummary, outPath: string, options: { generatedAt?: string } = {}): string {
  const html = renderExperimentReport(s, { generatedAt: options.generatedAt ?? new Date().toISOString() });
  writeFileAtomic(outPath, html);
  return html;
}

const CSS = `
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--bg:#fff;--soft:#f5f7fa}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
.sub,.note,figcaption,footer{color:var(--muted)}.note{font-size:13px}.warn{background:#fff4e0;border:1px solid #f0c36d;padding:6px 10px;border-radius:4px}
table{border-collapse:collapse;width:100%;margin:8px 0 16px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:6px 8px;text-align:left;vertical-align:top}
thead th{background:var(--soft);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}.na{color:var(--muted)}
.mean{font-size:16px;font-weight:600}.ci,.vals{color:var(--muted);font-size:12px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.badge{padding:1px 6px;border-radius:8px;background:var(--soft);border:1px solid var(--line);font-size:12px}
.status-done{background:#e3f4ea}.status-interrupted,.status-missing{background:#fdecea}
svg.chart{width:100%;max-width:760px;height:auto;font-size:12px}
svg .grid{stroke:#eceff4}svg .domain,svg .tick{stroke:#9aa3b2}svg text{fill:#3b4352}
figure{margin:8px 0 20px}code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
`;
