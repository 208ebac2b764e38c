// The sections of the run report (report.ts): charts (hand-written inline SVG) and tables of the data
// read by data.ts.
import type { BaselineRecord, IterationSummary, LeaderboardRow } from '../store/store.ts';
import { mean, median, quantile, seededRandom } from './stats.ts';
import type { Interval } from './stats.ts';
import {
  esc, n2, scaleLinear, niceTicks, niceDomain, svgOpen, axisLeft, axisBottom, legend, withLegend, polyline, innerW,
} from './svg.ts';
import type { Frame, LegendItem } from './svg.ts';
import { bestBySelection, bestByTest, rankCorrelations, type RankCorrelation } from '../loop/selection.ts';
import { bestProgram, taSelected, testTopK, type ReportData } from './data.ts';
import { armColor, armLabel, ciText, fmtMs, ITER_COLORS, lines, notYet, pairCell, pct, pctCell, short, VERDICT_COLORS, verdictColor } from './format.ts';

const FRAME: Frame = { width: 760, height: 320, left: 64, right: 20, top: 34, bottom: 48 };

function groupsByT(d: ReportData): { ts: number[]; arms: string[] } {
  const rows = d.summaries.filter((s) => s.repeatIndex === 0);
  return { ts: [...new Set(rows.map((s) => s.t))].sort((a, b) => a - b), arms: [...new Set(rows.map((s) => s.arm))] };
}

export function sectionDistribution(d: ReportData): string {
  const rows = d.summaries.filter((s) => s.repeatIndex === 0);
  const all = rows.flatMap((s) => s.screenScores);
  if (all.length === 0) return notYet('no valid program has a dev score.');
  const { ts, arms } = groupsByT(d);
  const f = { ...FRAME, bottom: 44, height: 320 };
  const [y0, y1] = niceDomain(Math.min(...all), Math.max(...all));
  const y = scaleLinear([y0, y1], [f.height - f.bottom, f.top]);
  const band = innerW(f) / ts.length;
  const sub = band / (arms.length + 0.6);
  let s = svgOpen(f, 'distribution', 'Dev score of valid programs per iteration') + axisLeft(f, y, niceTicks(y0, y1), 'dev accuracy (screening)', (v) => `${Math.round(v * 100)}%`);
  s += axisBottom(f, ts.map((t, i) => ({ x: f.left + band * (i + 0.5), label: `iteration ${t}` })), '').replace(/<line class="tick"[^>]*\/>/g, '');
  const rnd = seededRandom(7);
  ts.forEach((t, i) => {
    arms.forEach((arm, j) => {
      const row = rows.find((r) => r.t === t && r.arm === arm);
      if (!row || row.screenScores.length === 0) return;
      const cx = f.left + band * i + (band - sub * arms.length) / 2 + sub * (j + 0.5);
      const col = armColor(arm, arms);
      const q1 = quantile(row.screenScores, 0.25)!;
      const q3 = quantile(row.screenScores, 0.75)!;
      const md = median(row.screenScores)!;
      const bw = Math.min(sub * 0.8, 70);
      s += `<g class="box"><rect x="${n2(cx - bw / 2)}" y="${n2(y(q3))}" width="${n2(bw)}" height="${n2(Math.max(1, y(q1) - y(q3)))}" fill="${col}" fill-opacity="0.10" stroke="${col}" stroke-opacity="0.6"/>`;
      s += `<line x1="${n2(cx - bw / 2)}" x2="${n2(cx + bw / 2)}" y1="${n2(y(md))}" y2="${n2(y(md))}" stroke="${col}" stroke-width="2.5"/></g>`;
      for (const v of row.screenScores) {
        const jx = cx + (rnd() - 0.5) * bw * 0.8;
        s += `<circle cx="${n2(jx)}" cy="${n2(y(v))}" r="3.2" fill="${col}" fill-opacity="0.55"><title>${esc(armLabel(arm))}, iteration ${t}: ${pct(v)}</title></circle>`;
      }
      s += `<text class="count" x="${n2(cx)}" y="${f.height - f.bottom + 33}" text-anchor="middle">n=${row.screenScores.length}</text>`;
    });
  });
  s += legend(f, arms.map((a) => ({ label: armLabel(a), color: armColor(a, arms), kind: 'dot' as const })));
  s += '</svg>';
  return `<p class="lead">Each dot is one distinct valid program, scored on the cheap dev subset (full dev when no subset is used); boxes show the quartiles and the median. The paper's figure 4: the distribution should shift upward as DPO trains the factory.</p>${s}`;
}

export function sectionProgress(d: ReportData): string {
  const rows = d.summaries.filter((s) => s.repeatIndex === 0 && s.bestScreen !== null);
  if (rows.length === 0) return notYet('no iteration has a scored valid program.');
  const { ts, arms } = groupsByT(d);
  const ta = taSelected(d, 'in-domain').find((b) => b.repeatIndex === 0 && b.devStrict !== null);
  const vals = rows.flatMap((r) => [r.bestScreen!, r.medianScreen!, ...(r.bestDevStrict !== null ? [r.bestDevStrict] : [])]);
  if (ta) vals.push(ta.devStrict!);
  const items: LegendItem[] = [
    ...arms.map((a) => ({ label: armLabel(a), color: armColor(a, arms), kind: 'line' as const })),
    { label: 'best', color: '#667085', kind: 'line' },
    { label: 'median', color: '#667085', kind: 'dash' },
  ];
  const f = withLegend(FRAME, items);
  const [y0, y1] = niceDomain(Math.min(...vals), Math.max(...vals));
  const y = scaleLinear([y0, y1], [f.height - f.bottom, f.top]);
  const x = ts.length === 1 ? () => f.left + innerW(f) / 2 : scaleLinear([ts[0], ts[ts.length - 1]], [f.left + 40, f.width - f.right - 40]);
  let s = svgOpen(f, 'progress', 'Best and median dev score per iteration') + axisLeft(f, y, niceTicks(y0, y1), 'dev accuracy', (v) => `${Math.round(v * 100)}%`);
  s += axisBottom(f, ts.map((t) => ({ x: x(t), label: String(t) })), 'iteration');
  if (ta) {
    const yy = n2(y(ta.devStrict!));
    s += `<line class="ref" x1="${f.left}" x2="${f.width - f.right}" y1="${yy}" y2="${yy}" stroke="#555" stroke-dasharray="2 4" stroke-width="1.5"/>`;
    s += `<text class="ref-label" x="${f.width - f.right - 4}" y="${n2(y(ta.devStrict!) - 6)}" text-anchor="end">Task Arithmetic (dev-tuned) ${pct(ta.devStrict)}</text>`;
  }
  for (const arm of arms) {
    const r = rows.filter((q) => q.arm === arm).sort((a, b) => a.t - b.t);
    if (!r.length) continue;
    const col = armColor(arm, arms);
    const best = r.map((q) => [x(q.t), y(q.bestDevStrict ?? q.bestScreen!)] as [number, number]);
    const med = r.map((q) => [x(q.t), y(q.medianScreen!)] as [number, number]);
    s += polyline(best, col) + polyline(med, col, { dash: true, width: 2 });
    for (const q of r) {
      const bv = q.bestDevStrict ?? q.bestScreen!;
      s += `<circle cx="${n2(x(q.t))}" cy="${n2(y(bv))}" r="4.5" fill="${col}"><title>${esc(armLabel(arm))} iteration ${q.t}: best ${pct(bv)}${q.bestDevStrict !== null ? ' (full dev)' : ' (subset)'}</title></circle>`;
      s += `<circle cx="${n2(x(q.t))}" cy="${n2(y(q.medianScreen!))}" r="3.5" fill="#fff" stroke="${col}" stroke-width="2"><title>${esc(armLabel(arm))} iteration ${q.t}: median ${pct(q.medianScreen)}</title></circle>`;
    }
  }
  s += legend(f, items) + '</svg>';
  return `<p class="lead">Best (solid; full-dev strict accuracy where measured) and median (dashed; screening score) of the valid programs of each iteration.</p>${s}`;
}

export function sectionValidity(d: ReportData): string {
  const rows = d.summaries.filter((s) => s.repeatIndex === 0 && s.nSampled > 0);
  if (rows.length === 0) return notYet('no program has been sampled.');
  const verdicts = [...new Set(rows.flatMap((r) => Object.keys(r.verdicts)))].sort((a, b) => (a === 'ok' ? -1 : b === 'ok' ? 1 : a.localeCompare(b)));
  const arms = [...new Set(rows.map((r) => r.arm))];
  const labelOf = (r: IterationSummary) => (arms.length > 1 ? `${r.arm} ${r.t}` : `iteration ${r.t}`);
  const f = withLegend({ ...FRAME, height: 340 }, [...verdicts, 'not evaluated yet'].map((v) => ({ label: v === 'ok' ? 'valid' : v, color: '' })));
  const maxN = Math.max(...rows.map((r) => r.nSampled));
  const [, y1] = niceDomain(0, maxN * 1.1);
  const y = scaleLinear([0, y1], [f.height - f.bottom, f.top]);
  const band = innerW(f) / rows.length;
  const bw = Math.min(band * 0.62, 90);
  let s = svgOpen(f, 'validity', 'Verdicts of sampled programs per iteration') + axisLeft(f, y, niceTicks(0, y1), 'programs sampled', (v) => String(v));
  s += axisBottom(f, rows.map((r, i) => ({ x: f.left + band * (i + 0.5), label: labelOf(r) })), '');
  rows.forEach((r, i) => {
    const cx = f.left + band * (i + 0.5);
    let acc = 0;
    for (const v of verdicts) {
      const c = r.verdicts[v] ?? 0;
      if (!c) continue;
      s += `<rect x="${n2(cx - bw / 2)}" y="${n2(y(acc + c))}" width="${n2(bw)}" height="${n2(y(acc) - y(acc + c))}" fill="${verdictColor(v, verdicts)}"><title>${esc(labelOf(r))}: ${esc(v)} ${c}</title></rect>`;
      acc += c;
    }
    const pending = r.nSampled - r.nEvaluated;
    if (pending > 0) s += `<rect x="${n2(cx - bw / 2)}" y="${n2(y(acc + pending))}" width="${n2(bw)}" height="${n2(y(acc) - y(acc + pending))}" fill="url(#hatch)" stroke="#999"><title>${esc(labelOf(r))}: not evaluated yet ${pending}</title></rect>`;
    s += `<text class="bar-label" x="${n2(cx)}" y="${n2(y(r.nSampled) - 7)}" text-anchor="middle">${r.passRate === null ? 'pending' : `${pct(r.passRate, 0)} valid`}</text>`;
  });
  s = s.replace('<title>', '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#bbb" stroke-width="2"/></pattern></defs><title>');
  const legendItems: LegendItem[] = verdicts.map((v) => ({ label: v === 'ok' ? 'valid' : v, color: verdictColor(v, verdicts) }));
  if (rows.some((r) => r.nSampled > r.nEvaluated)) legendItems.push({ label: 'not evaluated yet', color: '#c9ced6' });
  s += legend(f, legendItems) + '</svg>';
  const head = ['iteration', 'arm', 'T', 'sampled', 'distinct', 'valid', 'pass rate', ...verdicts.filter((v) => v !== 'ok')];
  const table = `<div class="scroll"><table class="data compact"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${d.summaries
    .map(
      (r) =>
        `<tr><td>${r.t}${r.repeatIndex ? ` <span class="muted">(repeat ${r.repeatIndex})</span>` : ''}</td><td>${esc(r.arm)}</td><td class="num">${r.temperature === null ? '—' : r.temperature.toFixed(2)}</td><td class="num">${r.nSampled}</td><td class="num">${r.nDistinct}</td><td class="num">${r.nValid}</td><td class="num">${pct(r.passRate)}</td>${verdicts
          .filter((v) => v !== 'ok')
          .map((v) => `<td class="num">${r.verdicts[v] ?? 0}</td>`)
          .join('')}</tr>`,
    )
    .join('')}</tbody></table></div>`;
  return `<p class="lead">Every sampled program (duplicates included) by the verdict of the sandbox validation cascade.</p>${s}<details><summary>Counts per iteration</summary>${table}</details>`;
}

function codeBlock(code: string, summary: string, id?: string): string {
  return `<details class="code"${id ? ` id="${esc(id)}"` : ''}><summary>${summary}</summary><div class="codewrap"><button type="button" class="copy">Copy</button><pre><code>${esc(code)}</code></pre></div></details>`;
}

export function sectionLeaderboard(d: ReportData): string {
  let s = '';
  if (d.leaderboard.length === 0) s += notYet('no valid program with a dev score.');
  else {
    s += `<p class="lead">Top ${d.leaderboard.length} distinct valid programs of the ${esc(armLabel(d.primaryArm))} arm by full-dev ${d.rankBy === 'flexible' ? 'flexible-extract' : 'strict'} accuracy (programs with only a screening score follow${d.rankBy === 'flexible' ? '; eval.rankBy: flexible, so the dev subset score and every choice use flexible-extract' : ''}). The top ones by dev are re-scored on the selection split (the best there is the run's best program) and on test.</p>`;
    s += `<div class="scroll"><table class="data leaderboard"><thead><tr><th>#</th><th>dev subset</th><th>dev strict <span class="muted">/ flex</span></th><th>select strict <span class="muted">/ flex</span></th><th>test strict <span class="muted">/ flex</span></th><th>iter.</th><th>arm</th><th>origin</th><th>program</th></tr></thead><tbody>`;
    for (const r of d.leaderboard) {
      s += `<tr><td class="num">${r.rank}</td>${pctCell(r.devSubset)}${pairCell(r.devStrict, r.devFlex)}${pairCell(r.selectStrict, r.selectFlex)}${pairCell(r.testStrict, r.testFlex)}<td class="num">${r.t}</td><td>${esc(r.arm)}</td><td>${esc(r.origin)}</td><td class="prog"><a class="prog-link" href="#p-${esc(r.hash)}"><code>${esc(short(r.hash))}</code></a> <span class="muted">${lines(r.code)}</span></td></tr>`;
    }
    s += '</tbody></table></div>';
    s += `<h3>Code of the top ${d.leaderboard.length}</h3><div class="programs">${d.leaderboard
      .map((r) =>
        codeBlock(
          r.code,
          `<span class="rank">#${r.rank}</span> <code>${esc(short(r.hash))}</code> <span class="muted">iteration ${r.t} · dev ${pct(r.devStrict ?? r.devSubset)} · select ${pct(r.selectStrict)} · test ${pct(r.testStrict)}</span>`,
          `p-${r.hash}`,
        ),
      )
      .join('')}</div>`;
  }
  if (d.failures.length) {
    const cats = [...new Set(d.failures.map((f) => f.verdict))];
    s += `<details class="failures"><summary>Failure examples of the ${esc(armLabel(d.primaryArm))} arm: ${cats.length} categories, latest ${esc(Math.max(...cats.map((c) => d.failures.filter((f) => f.verdict === c).length)))} each</summary><div class="scroll"><table class="data failures"><thead><tr><th>category</th><th>iter.</th><th>arm</th><th>message</th><th>program</th></tr></thead><tbody>`;
    for (const f of d.failures) {
      s += `<tr><td><span class="chip" style="background:${VERDICT_COLORS[f.verdict] ?? '#888'}">${esc(f.verdict)}</span></td><td class="num">${f.t}</td><td>${esc(f.arm)}</td><td class="msg">${esc(f.message ?? '')}</td><td class="prog">${codeBlock(f.code, `<code>${esc(short(f.hash))}</code>`)}</td></tr>`;
    }
    s += '</tbody></table></div></details>';
  }
  return s;
}

const rhoText = (c: RankCorrelation): string => (c.rho === null ? '—' : `${c.rho >= 0 ? '' : '−'}${Math.abs(c.rho).toFixed(3)}`);

export function sectionChoosing(d: ReportData): string {
  const chosen = bestBySelection(d.ranked, d.rankBy);
  const byDev = d.leaderboard[0] ?? null;
  const k = testTopK(d);
  const paperRow = bestByTest(d.leaderboard.slice(0, k), d.rankBy);
  const nSelect = d.ranked.filter((r) => r.selectStrict !== null).length;
  let s = `<p class="lead">Dev screens every candidate; the top programs by dev are re-scored on the selection split, and the best there (ties: higher dev, then rank) is the run's best program (<code>best-algorithm.js</code>); test only reports. Choosing by dev alone picks dev noise; choosing the best test score among the top ${esc(k)} (the paper's protocol) picks on test and is optimistic.</p>`;
  if (!chosen) s += notYet('no program has a selection-split score (the selection phase runs after the last iteration).');
  const rows: [string, LeaderboardRow | null, string][] = [
    ['best by the selection split', chosen, `the run's best program; the best of the ${nSelect} programs scored on the selection split`],
    ['best by dev', byDev, 'rank 1 on the leaderboard'],
    [`best test among the top ${k} by dev`, paperRow, "paper's protocol: selects on test, optimistic"],
  ];
  s += `<div class="scroll"><table class="data choosing"><thead><tr><th>choice</th><th>program</th><th>rank by dev</th><th>dev strict</th><th>select strict</th><th>test strict</th><th>note</th></tr></thead><tbody>${rows
    .map(([label, r, note], i) =>
      r
        ? `<tr${i === 0 ? ' class="sel"' : ''} data-choice="${i === 0 ? 'select' : i === 1 ? 'dev' : 'test'}"><td>${esc(label)}</td><td>${d.leaderboard.some((x) => x.hash === r.hash) ? `<a class="prog-link" href="#p-${esc(r.hash)}"><code>${esc(short(r.hash))}</code></a>` : `<code>${esc(short(r.hash))}</code>`}</td><td class="num">${r.rank}</td>${pctCell(r.devStrict)}${pctCell(r.selectStrict)}${pctCell(r.testStrict)}<td class="muted">${esc(note)}</td></tr>`
        : `<tr><td>${esc(label)}</td><td class="na" colspan="6">not yet</td></tr>`,
    )
    .join('')}</tbody></table></div>`;
  const rc = rankCorrelations(d.ranked);
  const nValid = d.ranked.filter((r) => r.devStrict !== null).length;
  s += `<h3>How well the splits agree</h3><p class="lead">Spearman rank correlation (average ranks for ties) over the programs that have both scores; ${esc(nValid)} valid programs have a full-dev score. Programs are scored on test only when they are among the top ${esc(k)} by dev or chosen (or all of them with <code>eval.testAll</code>), so over few programs these numbers are rough.</p>`;
  s += `<div class="scroll"><table class="data compact correlations"><thead><tr><th>pair</th><th>Spearman ρ</th><th>n</th></tr></thead><tbody>${(
    [['dev vs test', rc.devTest], ['dev vs select', rc.devSelect], ['select vs test', rc.selectTest]] as const
  )
    .map(([name, c]) => `<tr data-pair="${esc(name)}"><td>${esc(name)}</td><td class="num">${rhoText(c)}</td><td class="num">${c.n}</td></tr>`)
    .join('')}</tbody></table></div>`;
  s += scatterDevTest(d, chosen, byDev);
  return s;
}

/** Dev vs test of every program with both scores; the chosen program and the best by dev are marked. */
function scatterDevTest(d: ReportData, chosen: LeaderboardRow | null, byDev: LeaderboardRow | null): string {
  const pts = d.ranked.filter((r) => r.devStrict !== null && r.testStrict !== null);
  if (pts.length < 2) return '';
  const items: LegendItem[] = [
    { label: 'program', color: '#0072B2', kind: 'dot' },
    { label: 'chosen (selection split)', color: '#D55E00', kind: 'dot' },
    { label: 'best by dev', color: '#009E73', kind: 'dot' },
  ];
  const f = withLegend({ ...FRAME, height: 340 }, items);
  const [x0, x1] = niceDomain(Math.min(...pts.map((r) => r.devStrict!)), Math.max(...pts.map((r) => r.devStrict!)));
  const [y0, y1] = niceDomain(Math.min(...pts.map((r) => r.testStrict!)), Math.max(...pts.map((r) => r.testStrict!)));
  const x = scaleLinear([x0, x1], [f.left + 8, f.width - f.right - 8]);
  const y = scaleLinear([y0, y1], [f.height - f.bottom, f.top]);
  let s = svgOpen(f, 'dev-test', 'Dev vs test accuracy of the programs scored on both') + axisLeft(f, y, niceTicks(y0, y1), 'test accuracy (strict)', (v) => `${Math.round(v * 1000) / 10}%`);
  s += axisBottom(f, niceTicks(x0, x1).map((t) => ({ x: x(t), label: `${Math.round(t * 1000) / 10}%` })), 'dev accuracy (strict)');
  const marked = (r: LeaderboardRow) => r.hash === chosen?.hash || r.hash === byDev?.hash;
  for (const r of [...pts.filter((r) => !marked(r)), ...pts.filter(marked)]) {
    const mark = r.hash === chosen?.hash ? '#D55E00' : r.hash === byDev?.hash ? '#009E73' : '#0072B2';
    const big = mark !== '#0072B2';
    s += `<circle class="pt${big ? ' marked' : ''}" cx="${n2(x(r.devStrict!))}" cy="${n2(y(r.testStrict!))}" r="${big ? 6 : 4}" fill="${mark}" fill-opacity="${big ? 0.95 : 0.55}"><title>#${r.rank} ${esc(short(r.hash))}: dev ${pct(r.devStrict)}, select ${pct(r.selectStrict)}, test ${pct(r.testStrict)}</title></circle>`;
  }
  s += legend(f, items) + '</svg>';
  return s;
}

interface ControlRow {
  label: string;
  kind: string;
  color: string;
  tests: number[];
  devs: number[];
  detail: string;
}

export function sectionControls(d: ReportData, ci: (xs: number[]) => Interval | null): string {
  const rows: ControlRow[] = [];
  const arms = [...new Set(d.repeats.map((r) => r.arm))];
  for (const arm of arms) {
    const reps = d.repeats.filter((r) => r.arm === arm);
    rows.push({
      label: armLabel(arm), kind: arm === d.primaryArm ? 'method' : 'control', color: armColor(arm, arms),
      tests: reps.filter((r) => r.testStrict !== null).map((r) => r.testStrict!), devs: reps.filter((r) => r.bestDevStrict !== null).map((r) => r.bestDevStrict!),
      detail: `seeds ${reps.map((r) => r.seed).join(', ')}`,
    });
  }
  const chosen = bestProgram(d);
  if (!arms.includes(d.primaryArm) && chosen && chosen.row.testStrict !== null) {
    const b = chosen.row;
    rows.unshift({ label: armLabel(d.primaryArm), kind: 'method', color: armColor(d.primaryArm, [d.primaryArm]), tests: [b.testStrict!], devs: b.devStrict !== null ? [b.devStrict] : [], detail: `${chosen.by === 'select' ? 'best by the selection split' : 'best-by-dev'} ${short(b.hash)}` });
  }
  const inDomain = d.baselines.filter((b) => b.expertSet === 'in-domain');
  for (const name of [...new Set(inDomain.map((b) => b.name))]) {
    const reps = [...new Set(inDomain.filter((b) => b.name === name).map((b) => b.repeatIndex))];
    const sel = reps
      .map((rep) => {
        const rr = inDomain.filter((b) => b.name === name && b.repeatIndex === rep);
        return rr.find((b) => b.selected) ?? [...rr].filter((b) => b.devStrict !== null).sort((a, b) => b.devStrict! - a.devStrict!)[0];
      })
      .filter((b): b is BaselineRecord => b !== undefined);
    rows.push({
      label: name, kind: 'baseline', color: '#555', tests: sel.filter((b) => b.testStrict !== null).map((b) => b.testStrict!),
      devs: sel.filter((b) => b.devStrict !== null).map((b) => b.devStrict!),
      detail: sel.some((b) => Object.keys(b.params ?? {}).length) ? `tuned on dev: ${sel.map((b) => JSON.stringify(b.params)).filter((v, i, a) => a.indexOf(v) === i).join(' · ')}` : '',
    });
  }
  if (rows.length === 0) return notYet('no baseline, control or repeat results.');
  const stats = rows.map((r) => ({ r, ci: ci(r.tests), m: mean(r.tests), dm: mean(r.devs) }));
  let s = '<p class="lead">Test accuracy (strict) of the program selected on dev for each arm, and of each baseline tuned on dev. With repeats: mean and 95% bootstrap interval; small dots are the individual repeats.</p>';
  const plotted = stats.filter((x) => x.m !== null);
  if (plotted.length) {
    const rowH = 34;
    const f: Frame = { width: 760, height: 44 + 40 + rowH * plotted.length, left: 230, right: 30, top: 24, bottom: 44 };
    const vals = plotted.flatMap((x) => [...x.r.tests, ...(x.ci ? [x.ci.lo, x.ci.hi] : [])]);
    const [x0, x1] = niceDomain(Math.min(...vals), Math.max(...vals));
    const x = scaleLinear([x0, x1], [f.left, f.width - f.right]);
    s += svgOpen(f, 'controls', 'Test accuracy of methods, controls and baselines');
    for (const t of niceTicks(x0, x1)) {
      s += `<line class="grid" x1="${n2(x(t))}" x2="${n2(x(t))}" y1="${f.top}" y2="${f.height - f.bottom}"/>`;
    }
    s += axisBottom(f, niceTicks(x0, x1).map((t) => ({ x: x(t), label: `${Math.round(t * 1000) / 10}%` })), 'test accuracy (strict)');
    plotted.forEach(({ r, ci: c, m }, i) => {
      const cy = f.top + 18 + i * rowH;
      s += `<text class="row-label" x="${f.left - 10}" y="${cy}" text-anchor="end" dominant-baseline="middle">${esc(r.label)}</text>`;
      if (c) s += `<line x1="${n2(x(c.lo))}" x2="${n2(x(c.hi))}" y1="${cy}" y2="${cy}" stroke="${r.color}" stroke-width="3" stroke-linecap="round"><title>95% CI ${ciText(c)}</title></line>`;
      for (const v of r.tests) s += `<circle cx="${n2(x(v))}" cy="${cy + 9}" r="2.6" fill="${r.color}" fill-opacity="0.6"><title>${pct(v)}</title></circle>`;
      s += `<rect x="${n2(x(m!) - 5)}" y="${cy - 5}" width="10" height="10" transform="rotate(45 ${n2(x(m!))} ${cy})" fill="${r.color}"><title>${esc(r.label)}: ${pct(m)}</title></rect>`;
    });
    s += '</svg>';
  }
  s += `<div class="scroll"><table class="data"><thead><tr><th>method</th><th>kind</th><th>n</th><th>dev strict (mean)</th><th>test strict (mean)</th><th>95% CI</th><th>details</th></tr></thead><tbody>${stats
    .map(
      ({ r, ci: c, m, dm }) =>
        `<tr><td><span class="swatch" style="background:${r.color}"></span>${esc(r.label)}</td><td>${esc(r.kind)}</td><td class="num">${r.tests.length}</td>${pctCell(dm)}${pctCell(m)}<td class="num">${c ? ciText(c) : '<span class="muted">needs ≥ 2 repeats</span>'}</td><td class="muted">${esc(r.detail)}</td></tr>`,
    )
    .join('')}</tbody></table></div>`;
  const grid = inDomain.filter((b) => !b.selected || inDomain.filter((x) => x.name === b.name).length > 1);
  if (grid.length) {
    s += `<details><summary>All baseline configurations (${inDomain.length})</summary><div class="scroll"><table class="data compact"><thead><tr><th>name</th><th>params</th><th>repeat</th><th>selected</th><th>dev strict</th><th>dev flex</th><th>test strict</th><th>test flex</th></tr></thead><tbody>${inDomain
      .map(
        (b) =>
          `<tr${b.selected ? ' class="sel"' : ''}><td>${esc(b.name)}</td><td><code>${esc(JSON.stringify(b.params))}</code></td><td class="num">${b.repeatIndex}</td><td>${b.selected ? '✓' : ''}</td>${pctCell(b.devStrict)}${pctCell(b.devFlex)}${pctCell(b.testStrict)}${pctCell(b.testFlex)}</tr>`,
      )
      .join('')}</tbody></table></div></details>`;
  }
  return s;
}

export function sectionTransfer(d: ReportData): string {
  const ood = d.baselines.filter((b) => b.expertSet === 'ood');
  if (d.transfers.length === 0 && ood.length === 0) return notYet('no out-of-domain transfer results.');
  let s = '<p class="lead">The top discovered programs applied unchanged to out-of-domain experts, next to baselines re-tuned for those experts.</p>';
  s += '<div class="scroll"><table class="data"><thead><tr><th>method</th><th>expert set</th><th>dev strict</th><th>test strict</th><th>test flex</th></tr></thead><tbody>';
  for (const t of d.transfers) {
    s += `<tr><td>discovered #${t.sourceRank} <code>${esc(short(t.hash))}</code>${t.repeatIndex ? ` <span class="muted">(repeat ${t.repeatIndex})</span>` : ''}</td><td>${esc(t.expertSet)}</td>${pctCell(t.devStrict)}${pctCell(t.testStrict)}${pctCell(t.testFlex)}</tr>`;
  }
  for (const b of ood.filter((x) => x.selected || ood.filter((y) => y.name === x.name).length === 1)) {
    s += `<tr class="baseline"><td>${esc(b.name)} <span class="muted">${esc(JSON.stringify(b.params))}</span></td><td>ood</td>${pctCell(b.devStrict)}${pctCell(b.testStrict)}${pctCell(b.testFlex)}</tr>`;
  }
  return s + '</tbody></table></div>';
}

function dpoChart(d: ReportData, key: 'loss' | 'margin' | 'accuracy', label: string): string {
  const steps = d.dpo.filter((s) => s[key] !== null);
  if (steps.length === 0) return '';
  const groups = [...new Set(steps.map((s) => `${s.arm}|${s.repeatIndex}|${s.t}`))];
  const f: Frame = { width: 300, height: 230, left: 54, right: 10, top: 34, bottom: 44 };
  const xs: [string, number, number][] = [];
  let offset = 0;
  for (const g of groups) {
    const gs = steps.filter((s) => `${s.arm}|${s.repeatIndex}|${s.t}` === g);
    for (const st of gs) xs.push([g, offset + st.step, st[key]!]);
    offset += Math.max(...gs.map((x) => x.step)) + 1;
  }
  const vals = xs.map((x) => x[2]);
  const [y0, y1] = key === 'accuracy' ? [0, 1] : niceDomain(Math.min(...vals, key === 'margin' ? 0 : Infinity), Math.max(...vals));
  const y = scaleLinear([y0, y1], [f.height - f.bottom, f.top]);
  const x = scaleLinear([0, Math.max(1, offset - 1)], [f.left, f.width - f.right]);
  let s = svgOpen(f, `dpo-${key}`, `DPO ${label} per step`) + axisLeft(f, y, niceTicks(y0, y1, 4), label, (v) => (key === 'accuracy' ? `${Math.round(v * 100)}%` : String(Number(v.toPrecision(3)))));
  s += axisBottom(f, niceTicks(0, Math.max(1, offset - 1), 5).map((t) => ({ x: x(t), label: String(t) })), 'step (cumulative)');
  if (key === 'margin' && y0 < 0 && y1 > 0) s += `<line x1="${f.left}" x2="${f.width - f.right}" y1="${n2(y(0))}" y2="${n2(y(0))}" stroke="#888" stroke-width="1"/>`;
  groups.forEach((g, i) => {
    const pts = xs.filter((p) => p[0] === g).map((p) => [x(p[1]), y(p[2])] as [number, number]);
    s += polyline(pts, ITER_COLORS[i % ITER_COLORS.length], { width: 2 });
  });
  const items = groups.map((g, i) => {
    const [arm, rep, t] = g.split('|');
    return { label: `${arm !== d.primaryArm ? `${arm} ` : ''}${rep !== '0' ? `r${rep} ` : ''}it ${t}`, color: ITER_COLORS[i % ITER_COLORS.length], kind: 'line' as const };
  });
  s += legend(f, items.length > 4 ? [] : items) + '</svg>';
  return `<div class="panel">${s}</div>`;
}

export function sectionDpo(d: ReportData): string {
  if (d.dpo.length === 0) return notYet('no DPO training steps recorded.');
  const panels = [dpoChart(d, 'loss', 'loss'), dpoChart(d, 'margin', 'reward margin'), dpoChart(d, 'accuracy', 'reward accuracy')].join('');
  const its = [...new Set(d.dpo.map((s) => s.iterationId))];
  const rows = its.map((id) => {
    const st = d.dpo.filter((s) => s.iterationId === id);
    const first = st[0];
    const last = st[st.length - 1];
    return `<tr><td>${first.t}</td><td>${esc(first.arm)}</td><td class="num">${st.length}</td><td class="num">${first.loss.toFixed(4)} → ${last.loss.toFixed(4)}</td><td class="num">${last.margin === null ? '—' : last.margin.toFixed(4)}</td><td class="num">${pct(last.accuracy)}</td><td class="num">${last.rewardsChosen === null ? '—' : last.rewardsChosen.toFixed(4)}</td><td class="num">${last.rewardsRejected === null ? '—' : last.rewardsRejected.toFixed(4)}</td></tr>`;
  });
  return `<p class="lead">Per-step DPO statistics of the factory, one colour per iteration (steps of successive iterations are laid end to end). Loss starts at ln 2 ≈ 0.693 when the policy equals the reference.</p><div class="panels">${panels}</div>
<div class="scroll"><table class="data compact"><thead><tr><th>iteration</th><th>arm</th><th>steps</th><th>loss first → last</th><th>margin (last)</th><th>accuracy (last)</th><th>rewards/chosen</th><th>rewards/rejected</th></tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

export function sectionTimings(d: ReportData): string {
  const its = d.summaries;
  if (its.length === 0) return notYet('no iteration started.');
  const phases = [...new Set(its.flatMap((s) => Object.keys(s.timings)))];
  let s = '';
  const withPhases = its.filter((s) => Object.keys(s.timings).length > 0 && s.repeatIndex === 0);
  if (withPhases.length && phases.length) {
    const rowH = 30;
    const f: Frame = { width: 760, height: 24 + 40 + rowH * withPhases.length + 20, left: 180, right: 30, top: 34, bottom: 44 };
    const totals = withPhases.map((r) => phases.reduce((a, p) => a + (r.timings[p] ?? 0), 0));
    const [, x1] = niceDomain(0, Math.max(...totals) / 1000);
    const x = scaleLinear([0, x1], [f.left, f.width - f.right]);
    s += svgOpen(f, 'timings', 'Time per phase per iteration');
    for (const t of niceTicks(0, x1)) s += `<line class="grid" x1="${n2(x(t))}" x2="${n2(x(t))}" y1="${f.top}" y2="${f.height - f.bottom}"/>`;
    s += axisBottom(f, niceTicks(0, x1).map((t) => ({ x: x(t), label: String(t) })), 'seconds');
    withPhases.forEach((r, i) => {
      const cy = f.top + 10 + i * rowH;
      s += `<text class="row-label" x="${f.left - 10}" y="${cy + 9}" text-anchor="end" dominant-baseline="middle">${esc(`${r.arm !== d.primaryArm ? r.arm + ' · ' : ''}iteration ${r.t}`)}</text>`;
      let acc = 0;
      phases.forEach((p, j) => {
        const v = (r.timings[p] ?? 0) / 1000;
        if (v <= 0) return;
        s += `<rect x="${n2(x(acc))}" y="${cy}" width="${n2(Math.max(0.5, x(acc + v) - x(acc)))}" height="18" fill="${ITER_COLORS[j % ITER_COLORS.length]}" fill-opacity="0.85"><title>${esc(p)}: ${fmtMs(v * 1000)}</title></rect>`;
        acc += v;
      });
    });
    s += legend(f, phases.map((p, j) => ({ label: p, color: ITER_COLORS[j % ITER_COLORS.length] }))) + '</svg>';
  } else s += notYet('no phase timings recorded.');
  const med = (xs: number[]) => fmtMs(median(xs));
  s += `<div class="scroll"><table class="data compact"><thead><tr><th>iteration</th><th>arm</th><th>status</th><th>wall time</th>${phases.map((p) => `<th>${esc(p)}</th>`).join('')}<th>median sandbox</th><th>median merge</th><th>median eval</th></tr></thead><tbody>${its
    .map((r) => {
      const et = d.evalTimings.find((e) => e.iterationId === r.iterationId);
      const wall = r.finishedAt ? Date.parse(r.finishedAt) - Date.parse(r.startedAt) : null;
      return `<tr><td>${r.t}${r.repeatIndex ? ` <span class="muted">(r${r.repeatIndex})</span>` : ''}</td><td>${esc(r.arm)}</td><td>${esc(r.status)}</td><td class="num">${wall === null ? '<span class="muted">running</span>' : fmtMs(wall)}</td>${phases.map((p) => `<td class="num">${fmtMs(r.timings[p])}</td>`).join('')}<td class="num">${med(et?.sandbox ?? [])}</td><td class="num">${med(et?.merge ?? [])}</td><td class="num">${med(et?.evaluate ?? [])}</td></tr>`;
    })
    .join('')}</tbody></table></div>`;
  if (d.scoredBy.length) {
    // distributed evaluation: which queue worker scored each program
    const per = new Map<string, number>();
    for (const x of d.scoredBy) per.set(x.worker, (per.get(x.worker) ?? 0) + 1);
    const tally = [...per].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([w, k]) => `${esc(w)} (${k})`).join(', ');
    s += `<details class="scored-by"><summary>Scored by ${per.size} queue worker${per.size === 1 ? '' : 's'}: ${tally}</summary><table class="data compact"><thead><tr><th>program</th><th>worker</th></tr></thead><tbody>${d.scoredBy
      .map((x) => `<tr><td><code>${esc(x.hash.slice(0, 12))}</code></td><td>${esc(x.worker)}</td></tr>`)
      .join('')}</tbody></table></details>`;
  }
  const ckpts = its.filter((r) => r.factoryCheckpoint);
  if (ckpts.length) {
    s += `<details><summary>Factory checkpoints (${ckpts.length})</summary><ul class="paths">${ckpts
      .map((r) => `<li>${esc(`${r.arm} · iteration ${r.t}${r.repeatIndex ? ` · repeat ${r.repeatIndex}` : ''}`)}: <code>${esc(r.factoryCheckpoint)}</code></li>`)
      .join('')}</ul></details>`;
  }
  return s;
}
