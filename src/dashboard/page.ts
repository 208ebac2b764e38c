/**
 * The dashboard's HTML: a live panel (where the run is, with progress) above the run's report body —
 * the very header and sections of report.html (src/report/report.ts renderReportBody), so the charts
 * are drawn once, by the report. The page replaces both parts in place when the server pushes a new
 * state (server-sent events), keeping open <details> open.
 *
 * Program text is untrusted: the report escapes it; everything here is escaped with esc() too, and
 * the client only ever inserts HTML rendered by this module. The scripts are constants.
 */
import { REPORT_CSS, REPORT_SCRIPT } from '../report/report.ts';
import { esc } from '../report/svg.ts';
import { pct } from '../report/format.ts';
import type { LiveStatus } from './live.ts';

/** What the server pushes: the page's parts and the facts a client (or a test) can check. */
export interface DashboardState {
  /** Increases whenever the content changes. */
  version: number;
  title: string;
  /** HTML of the live panel. */
  live: string;
  /** HTML of the report part (the report's header and sections, or a message page). */
  report: string;
  status: LiveStatus;
  /** Latest write the store holds (ISO time), for measuring how fast the page follows the run. */
  lastWrite: string | null;
}

const STATE_LABEL: Record<LiveStatus['state'], string> = {
  waiting: 'waiting for a run', error: 'store unreadable', 'no-run': 'no run yet', running: 'running', done: 'finished', failed: 'failed', interrupted: 'interrupted',
};

/** The live panel: state, phase with a progress bar, running counts, last store write. */
export function renderLive(s: LiveStatus, runDir: string, lastWrite: string | null): string {
  const p = s.progress;
  const bar = p ? `<progress max="${Math.max(1, p.total)}" value="${p.done}"></progress> <span class="num" data-live="progress">${p.done} / ${p.total}</span>` : '';
  const it = s.iteration ? `<span class="cell"><span class="k">iteration</span><b data-live="iteration">${s.iteration.t}${s.iteration.of ? ` / ${s.iteration.of}` : ''}</b></span>` : '';
  return `<div class="live-row">
<span class="live-state state-${esc(s.state)}"><span class="dot"></span><b data-live="state">${esc(STATE_LABEL[s.state])}</b></span>
<span class="live-phase" data-live="phase">${esc(s.phase)}</span>${bar}
</div>
<div class="live-row small">
${it}<span class="cell"><span class="k">scored</span><b data-live="scored">${s.scored}</b> / <span data-live="sampled">${s.sampled}</span> sampled</span>
<span class="cell"><span class="k">valid</span><b data-live="valid">${s.valid}</b></span>
<span class="cell"><span class="k">best dev</span><b data-live="best">${s.bestDev === null ? '—' : pct(s.bestDev)}</b></span>
<span class="cell"><span class="k">store</span><code>${esc(runDir)}</code>${lastWrite ? ` · last write <span data-live="last-write">${esc(lastWrite.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</span>` : ''}</span>
<span class="cell conn" data-live="connection">live</span>
</div>`;
}

/** The report part when there is nothing to report: no store yet, or a store that cannot be read. */
export function renderMessage(kind: 'waiting' | 'error', runDir: string, detail: string, intervalMs: number): string {
  const store = `${runDir.replace(/\/+$/, '')}/run.sqlite`;
  const retry = `This page checks again every ${intervalMs >= 1000 ? `${(intervalMs / 1000).toFixed(intervalMs % 1000 ? 1 : 0)} s` : `${intervalMs} ms`} and shows the run as soon as it can.`;
  const body =
    kind === 'waiting'
      ? `<h2>No run store yet</h2><p class="lead">There is no <code>${esc(store)}</code>: no run has started in this folder${detail ? ` (${esc(detail)})` : ''}. Start one with <code>selfdev run CONFIG.yml --out ${esc(runDir)}</code> (or <code>npm start</code> for runs/embedded). ${esc(retry)}</p>`
      : `<h2>The run store cannot be read</h2><p class="lead">Reading <code>${esc(store)}</code> failed: <code class="err" data-live="error">${esc(detail)}</code></p><p class="lead">The dashboard opens the store read-only and has not changed it. If a run is still creating it, this may pass; a corrupted file needs the run to be restored or restarted (<code>selfdev run --out ${esc(runDir)} --resume</code> reports what is wrong). ${esc(retry)}</p>`;
  return `<header class="top"><h1>selfdev dashboard</h1><p class="sub">${esc(runDir)}</p></header><main><section class="message ${kind}">${body}</section></main>`;
}

/** The whole page, with the state rendered in (it shows without script too). */
export function renderDashboardPage(s: DashboardState, runDir: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(s.title)}</title>
<style>${REPORT_CSS}${DASHBOARD_CSS}</style>
</head>
<body data-version="${s.version}">
<div id="live" class="live" aria-live="polite">${s.live}</div>
<div id="report">${s.report}</div>
<footer>selfdev dashboard of <code>${esc(runDir)}</code>: reads its run.sqlite read-only and follows it live (server-sent events). A finished run shows exactly its report.html.</footer>
<script>${REPORT_SCRIPT}</script>
<script>${LIVE_SCRIPT}</script>
</body>
</html>
`;
}

const DASHBOARD_CSS = `
.live { position: sticky; top: 0; z-index: 5; background: #101828; color: #f2f4f7; padding: 10px max(24px, calc((100% - 1040px) / 2 + 24px)); font-size: 14px; box-shadow: 0 1px 4px rgba(0,0,0,.25); }
.live-row { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 18px; }
.live-row.small { margin-top: 4px; font-size: 13px; color: #d0d5dd; }
.live .k { font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: #98a2b3; margin-right: 6px; }
.live code { color: #f2f4f7; font-size: 12px; }
.live progress { width: 220px; height: 10px; accent-color: #53b1fd; }
.live-state .dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 7px; background: #98a2b3; vertical-align: -1px; }
.state-running .dot { background: #53b1fd; animation: pulse 1.4s ease-in-out infinite; }
.state-done .dot { background: #32d583; } .state-failed .dot, .state-error .dot { background: #f97066; } .state-interrupted .dot, .state-waiting .dot { background: #fdb022; }
.live .conn { margin-left: auto; color: #98a2b3; } .live .conn.lost { color: #fdb022; }
@keyframes pulse { 50% { opacity: .35; } }
section.message.error { border-color: #fda29b; } code.err { color: #9b2c1c; white-space: pre-wrap; }
`;

// Constant script: subscribes to /events and swaps in the server-rendered parts (never builds HTML
// from data itself). window.selfdevDashboard records each update (version, when it was applied, the
// store's last write) so the delay from a store write to the page can be measured.
const LIVE_SCRIPT = `
(function () {
  var live = document.getElementById('live');
  var report = document.getElementById('report');
  var version = Number(document.body.getAttribute('data-version'));
  var log = { updates: [] };
  window.selfdevDashboard = log;
  function key(d) { return d.id || (d.querySelector('summary') || { textContent: '' }).textContent; }
  function apply(s) {
    if (s.version === version) return;
    version = s.version;
    document.title = s.title;
    var open = Array.prototype.map.call(report.querySelectorAll('details[open]'), key);
    live.innerHTML = s.live;
    report.innerHTML = s.report;
    Array.prototype.forEach.call(report.querySelectorAll('details'), function (d) { if (open.indexOf(key(d)) >= 0) d.open = true; });
    document.body.setAttribute('data-version', String(version));
    log.updates.push({ version: version, appliedAt: Date.now(), lastWrite: s.lastWrite, state: s.status.state, scored: s.status.scored });
  }
  function connection(text, lost) {
    var c = live.querySelector('[data-live="connection"]');
    if (c) { c.textContent = text; c.className = 'cell conn' + (lost ? ' lost' : ''); }
  }
  if (!window.EventSource) { connection('no live updates in this browser (reload to refresh)', true); return; }
  var es = new EventSource('events');
  es.addEventListener('update', function (e) { apply(JSON.parse(e.data)); connection('live', false); });
  es.addEventListener('error', function () { connection('dashboard unreachable, retrying…', true); });
})();
`;
