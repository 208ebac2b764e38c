// report.html: a self-contained page (inline CSS, hand-written inline SVG, a few lines of inline JS
// for the copy buttons; no external resources) summarising a run from its RunStore. The data is read
// once (data.ts), each section renders it (sections.ts, with format.ts and svg.ts).
//
// Program text is untrusted: it is only ever placed in element content through esc(), never into a
// script. The inline script is a constant.
import type { RunStore } from '../store/store.ts';
import { writeFileAtomic } from '../store/store.ts';
import { bootstrapCI, mean } from './stats.ts';
import type { Interval } from './stats.ts';
import { esc } from './svg.ts';
import { describeProtocol, type EvalProtocol } from '../eval/protocol.ts';
import { bestByTest } from '../loop/selection.ts';
import { bestProgram, collectReportData, taSelected, testTopK, type ReportData, type ReportOptions } from './data.ts';
import { ciText, notYet, pct, short } from './format.ts';
import { sectionChoosing, sectionControls, sectionDistribution, sectionDpo, sectionLeaderboard, sectionProgress, sectionTimings, sectionTransfer, sectionValidity } from './sections.ts';

export { collectReportData, type ReportData, type ReportOptions } from './data.ts';

export function writeReport(store: RunStore, outPath: string, options: ReportOptions = {}): string {
  const html = renderReport(collectReportData(store, options), options);
  writeFileAtomic(outPath, html);
  return html;
}

// ---------------------------------------------------------------- page

export function renderReport(d: ReportData, options: ReportOptions = {}): string {
  const { title, body, footer } = renderReportBody(d, options);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
${body}
${footer}
<script>${REPORT_SCRIPT}</script>
</body>
</html>
`;
}

/**
 * The report's content: `body` is the header (run facts, headline, navigation) and main (every
 * section); report.html and the live dashboard (src/dashboard/) both show exactly this.
 */
export function renderReportBody(d: ReportData, options: ReportOptions = {}): { title: string; body: string; footer: string } {
  const seed = options.seed ?? 12345;
  const resamples = options.resamples ?? 2000;
  const generated = options.generatedAt ?? new Date().toISOString();
  const title = d.run ? `selfdev report — ${d.run.name}` : 'selfdev report — no run yet';
  const ci = (xs: number[]): Interval | null => bootstrapCI(xs, { seed, resamples });
  const sections: [string, string, string][] = d.run
    ? [
        ['distribution', 'Score distribution', sectionDistribution(d)],
        ['progress', 'Best and median', sectionProgress(d)],
        ['validity', 'Pass rate and failures', sectionValidity(d)],
        ['leaderboard', 'Leaderboard', sectionLeaderboard(d)],
        ['choosing', 'Choosing the best', sectionChoosing(d)],
        ['controls', 'Baselines and controls', sectionControls(d, ci)],
        ['transfer', 'Transfer', sectionTransfer(d)],
        ['dpo', 'DPO training', sectionDpo(d)],
        ['timings', 'Timings', sectionTimings(d)],
      ]
    : [];
  const nav = sections.map(([id, name]) => `<a href="#${id}">${esc(name)}</a>`).join('');
  const sectionsHtml = sections.map(([id, name, html]) => `<section id="${id}"><h2>${esc(name)}</h2>${html}</section>`).join('\n');
  const body = `<header class="top">
${renderHeader(d, ci)}
${nav ? `<nav>${nav}</nav>` : ''}
</header>
<main>
${d.run ? sectionsHtml : `<section><h2>No run recorded yet</h2>${notYet('this run directory holds no run. Start one with the loop; this page fills in as it progresses.')}</section>`}
</main>`;
  const footer = `<footer>Generated ${esc(generated)} by selfdev${d.run ? ` ${esc(d.run.selfdevVersion)}` : ''}. Intervals are percentile bootstrap 95% intervals over repeats (${resamples} resamples, seed ${seed}).</footer>`;
  return { title, body, footer };
}

/** A stored ISO time stamp as `2026-01-01 12:00:00 UTC`. */
const when = (ts: string): string => esc(ts.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'));

function renderHeader(d: ReportData, ci: (xs: number[]) => Interval | null): string {
  if (!d.run) return '<h1>selfdev report</h1><p class="sub">No run recorded yet.</p>';
  const r = d.run;
  const iters = d.summaries.filter((s) => s.arm === d.primaryArm && s.repeatIndex === 0);
  const sampled = d.summaries.reduce((a, s) => a + s.nSampled, 0);
  const valid = d.summaries.reduce((a, s) => a + s.nValid, 0);
  const meta = [
    ['status', `<span class="badge status-${esc(r.status)}">${esc(r.status)}</span>`],
    ['seed', esc(r.seed)],
    ['iterations', `${iters.filter((s) => s.status === 'done').length} done / ${iters.length} started`],
    ['programs', `${sampled} sampled, ${valid} valid`],
    ...(r.evalProtocol ? [['scoring', esc(describeProtocol(r.evalProtocol as EvalProtocol))]] : []),
    ['started', when(r.createdAt)],
    ['updated', when(r.updatedAt)],
    ...(r.finishedAt ? [[r.status === 'done' ? 'finished' : 'stopped', when(r.finishedAt)]] : []),
  ];
  return `<h1>${esc(r.name)}</h1>
<p class="sub">Self-Developing run: a factory model writes merge algorithms, the best and worst train it by DPO.</p>
<div class="meta">${meta.map(([k, v]) => `<div><span class="k">${esc(k)}</span><span class="v">${v}</span></div>`).join('')}</div>
${renderHeadline(d, ci)}
<details class="config"><summary>Run configuration</summary><pre><code>${esc(JSON.stringify(r.config, null, 2))}</code></pre>
<p class="k">Evaluation configuration (key ${esc(short(r.evalKey))})</p><pre><code>${esc(JSON.stringify(d.evalConfig ?? null, null, 2))}</code></pre></details>`;
}

function renderHeadline(d: ReportData, ci: (xs: number[]) => Interval | null): string {
  const chosen = bestProgram(d);
  const best = chosen?.row;
  const paperRow = bestByTest(d.leaderboard.slice(0, testTopK(d)), d.rankBy);
  const maxTest = paperRow?.testStrict ?? null;
  const dpoRep = d.repeats.filter((r) => r.arm === d.primaryArm && r.testStrict !== null).map((r) => r.testStrict!);
  const ta = taSelected(d, 'in-domain');
  const taTests = ta.filter((b) => b.testStrict !== null).map((b) => b.testStrict!);
  const how = chosen?.by === 'select' ? `best program <code>${esc(short(best!.hash))}</code>, chosen on the selection split (select ${pct(best!.selectStrict)}, dev ${pct(best!.devStrict ?? best!.devSubset)})` : `best-by-dev program <code>${esc(short(best?.hash ?? ''))}</code> (dev ${pct(best?.devStrict ?? best?.devSubset)})`;

  let algo: string;
  if (!best) algo = `<div class="big na">not yet</div><div class="small">no valid program with a dev score yet</div>`;
  else if (dpoRep.length >= 2) {
    const c = ci(dpoRep)!;
    algo = `<div class="big">${pct(c.estimate)}</div><div class="small">mean test accuracy (strict) over ${dpoRep.length} repeats, 95% CI ${ciText(c)}</div>`;
  } else if (best.testStrict !== null) {
    algo = `<div class="big">${pct(best.testStrict)}</div><div class="small">test accuracy (strict) of the ${how}</div>`;
  } else algo = `<div class="big na">not yet</div><div class="small">${how} has no test score yet</div>`;

  let base: string;
  if (taTests.length >= 2) {
    const c = ci(taTests)!;
    base = `<div class="big">${pct(c.estimate)}</div><div class="small">mean over ${taTests.length} repeats, 95% CI ${ciText(c)}</div>`;
  } else if (taTests.length === 1) {
    base = `<div class="big">${pct(taTests[0])}</div><div class="small">dev-tuned ${esc(JSON.stringify(ta[0].params))}, dev ${pct(ta[0].devStrict)}</div>`;
  } else base = `<div class="big na">not yet</div><div class="small">no dev-tuned Task Arithmetic test score yet</div>`;

  const a = dpoRep.length >= 2 ? mean(dpoRep) : (best?.testStrict ?? null);
  const b = taTests.length ? mean(taTests) : null;
  const delta = a !== null && b !== null ? `<div class="big ${a >= b ? 'pos' : 'neg'}">${a >= b ? '+' : '−'}${(Math.abs(a - b) * 100).toFixed(1)}</div><div class="small">points, discovered − Task Arithmetic (test)</div>` : `<div class="big na">—</div><div class="small">needs both test scores</div>`;
  const paper = maxTest !== null ? `<p class="note">Paper-style headline (best test score among the top ${testTopK(d)} by dev): ${pct(maxTest)} — optimistic, since it selects on test.</p>` : '';
  return `<div class="headline">
<div class="card accent"><div class="label">Best discovered algorithm</div>${algo}</div>
<div class="card"><div class="label">Task Arithmetic (dev-tuned)</div>${base}</div>
<div class="card"><div class="label">Difference</div>${delta}</div>
</div>${paper}`;
}

// ---------------------------------------------------------------- assets

export const REPORT_CSS = `
:root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --bg: #f7f8fa; --card: #fff; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
header.top { background: var(--card); border-bottom: 1px solid var(--line); padding: 24px max(24px, calc((100% - 1040px) / 2 + 24px)) 0; }
h1 { margin: 0; font-size: 26px; letter-spacing: -0.01em; }
h2 { font-size: 20px; margin: 0 0 8px; }
h3 { font-size: 16px; margin: 24px 0 8px; }
.sub { margin: 4px 0 16px; color: var(--muted); }
.meta { display: flex; flex-wrap: wrap; gap: 8px 28px; margin-bottom: 18px; }
.meta .k, p.k { display: block; font-size: 11px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted); }
.meta .v { font-weight: 600; }
.badge { padding: 1px 8px; border-radius: 10px; font-size: 13px; background: #eef; }
.status-done { background: #dff3e8; color: #1b6b44; } .status-running { background: #e3efff; color: #0b4f8a; }
.status-failed { background: #fde4e1; color: #9b2c1c; } .status-interrupted { background: #fff1d6; color: #8a5a00; }
.headline { display: grid; grid-template-columns: 1.3fr 1fr 0.8fr; gap: 14px; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px; }
.card.accent { border-left: 4px solid var(--accent); }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted); }
.card .big { font-size: 34px; font-weight: 700; line-height: 1.2; font-variant-numeric: tabular-nums; }
.card .big.na { color: #98a2b3; font-weight: 600; } .card .big.pos { color: #1b7a4b; } .card .big.neg { color: #b42318; }
.card .small { font-size: 13px; color: var(--muted); }
.note { font-size: 13px; color: var(--muted); margin: 8px 0 0; }
details.config { margin: 14px 0 0; } details.config pre { max-height: 320px; }
nav { display: flex; flex-wrap: wrap; gap: 4px 18px; margin-top: 16px; padding: 10px 0; border-top: 1px solid var(--line); font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; } nav a:hover { text-decoration: underline; }
main { max-width: 1040px; margin: 0 auto; padding: 8px 24px 24px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 20px 24px; margin: 18px 0; }
p.lead { color: var(--muted); margin: 0 0 12px; max-width: 80ch; }
p.empty { color: var(--muted); font-style: italic; background: var(--bg); border: 1px dashed #d0d5dd; border-radius: 8px; padding: 16px; margin: 0; }
svg.chart { width: 100%; height: auto; display: block; margin: 4px 0 10px; font-size: 12px; }
svg.chart text { fill: #475467; }
svg.chart .axis-label { font-size: 13px; fill: #344054; font-weight: 600; }
svg.chart .grid { stroke: #eaecf0; stroke-width: 1; }
svg.chart .domain, svg.chart .tick { stroke: #98a2b3; }
svg.chart .legend text { font-size: 12px; fill: #344054; }
svg.chart .count, svg.chart .ref-label { font-size: 11px; fill: #667085; }
svg.chart .bar-label { font-size: 12px; font-weight: 600; fill: #344054; }
svg.chart .row-label { font-size: 13px; fill: #344054; }
.panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 8px 16px; }
table.data { border-collapse: collapse; width: 100%; font-size: 14px; margin: 8px 0; }
table.data th { text-align: left; font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); border-bottom: 2px solid var(--line); padding: 6px 8px; white-space: nowrap; }
table.data td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.data td.na { color: #98a2b3; }
table.data.compact td, table.data.compact th { padding: 4px 8px; }
table.data tr.sel td { background: #f0f7ff; }
table.data tr.baseline td { background: #fafafa; }
td.msg { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; color: #9b2c1c; max-width: 360px; word-break: break-word; }
td.prog { min-width: 180px; } td.prog .codewrap { max-width: min(380px, 40vw); }
.programs details.code { border-bottom: 1px solid var(--line); padding: 6px 0; }
a.prog-link, a.prog-link:visited { color: var(--accent); text-decoration: none; } a.prog-link:hover { text-decoration: underline; }
.programs .rank { font-weight: 700; display: inline-block; min-width: 2.2em; }
:target > summary { background: #fff6d6; }
.flex { font-size: 12px; } td.path { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; max-width: 200px; }
.scroll { overflow-x: auto; }
.muted { color: var(--muted); }
.chip { color: #fff; border-radius: 10px; padding: 1px 8px; font-size: 12px; white-space: nowrap; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
details > summary { cursor: pointer; color: var(--accent); }
details.code > summary { color: var(--fg); }
.codewrap { position: relative; margin-top: 6px; }
pre { background: #0f172a; color: #e2e8f0; border-radius: 8px; padding: 12px 14px; overflow: auto; max-height: 420px; font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin: 6px 0; }
button.copy { position: absolute; top: 6px; right: 6px; font-size: 12px; border: 1px solid #475467; background: #1e293b; color: #e2e8f0; border-radius: 6px; padding: 2px 10px; cursor: pointer; }
button.copy:hover { background: #334155; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em; }
footer { max-width: 1040px; margin: 0 auto; padding: 8px 24px 40px; color: var(--muted); font-size: 13px; }
@media (max-width: 760px) { .headline { grid-template-columns: 1fr; } section { padding: 14px; } }
`;

// Constant script: copy buttons read the code block's text content (never interpreted as HTML).
export const REPORT_SCRIPT = `
document.addEventListener('click', function (ev) {
  var link = ev.target instanceof Element ? ev.target.closest('a.prog-link') : null;
  if (link) {
    var target = document.getElementById((link.getAttribute('href') || '').slice(1));
    if (target && target.tagName === 'DETAILS') target.open = true;
    return;
  }
  var b = ev.target;
  if (!(b instanceof HTMLElement) || !b.classList.contains('copy')) return;
  var code = b.parentElement && b.parentElement.querySelector('code');
  if (!code) return;
  var text = code.textContent || '';
  function done(ok) { b.textContent = ok ? 'Copied' : 'Select + Ctrl-C'; setTimeout(function () { b.textContent = 'Copy'; }, 1500); }
  function fallback() {
    try {
      var r = document.createRange(); r.selectNodeContents(code);
      var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
      done(document.execCommand('copy'));
    } catch (e) { done(false); }
  }
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
  else fallback();
});
`;
