// Small formatters and colours of the run report (report.ts, sections.ts): percentages, table cells,
// intervals, durations, arm and verdict colours.
import type { Interval } from './stats.ts';
import { esc } from './svg.ts';

const ARM_COLORS: Record<string, string> = { dpo: '#0072B2', random: '#E69F00', evolution: '#009E73', 'dpo-novel': '#CC79A7', 'dpo-mutate': '#D55E00' };
const EXTRA_COLORS = ['#56B4E9', '#8C6D31', '#666666', '#B8A21E'];
export const VERDICT_COLORS: Record<string, string> = {
  ok: '#2E9E6B', syntax: '#D55E00', runtime: '#E69F00', timeout: '#CC79A7', memory: '#56B4E9', 'op-limit': '#0072B2',
  'bad-shape': '#B8A21E', 'non-finite': '#7F7F7F', 'no-entry': '#A05A2C',
};
export const ITER_COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];

export function armColor(arm: string, arms: string[]): string {
  return ARM_COLORS[arm] ?? EXTRA_COLORS[Math.max(0, arms.filter((a) => !ARM_COLORS[a]).indexOf(arm)) % EXTRA_COLORS.length];
}
export function verdictColor(v: string, all: string[]): string {
  return VERDICT_COLORS[v] ?? EXTRA_COLORS[all.filter((x) => !VERDICT_COLORS[x]).indexOf(v) % EXTRA_COLORS.length];
}
const ARM_LABEL: Record<string, string> = {
  dpo: 'DPO (Self-Developing)', random: 'random (untrained factory)', evolution: 'evolution (no DPO)',
  'dpo-novel': 'DPO, new programs only', 'dpo-mutate': 'DPO factory as mutation operator',
};
export const armLabel = (a: string): string => ARM_LABEL[a] ?? a;

export const pct = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined ? '—' : `${(v * 100).toFixed(digits)}%`);
export const pctCell = (v: number | null | undefined): string =>
  v === null || v === undefined ? '<td class="num na" title="not measured yet">—</td>' : `<td class="num">${pct(v)}</td>`;
export const pairCell = (strict: number | null, flex: number | null): string =>
  strict === null && flex === null
    ? '<td class="num na" title="not measured yet">—</td>'
    : `<td class="num">${pct(strict)} <span class="muted flex">/ ${pct(flex)}</span></td>`;
export const lines = (code: string): string => {
  const n = code.split('\n').length;
  return `${n} line${n === 1 ? '' : 's'}`;
};
export const ciText = (ci: Interval | null): string => (ci ? `[${pct(ci.lo)}, ${pct(ci.hi)}]` : '');
export const short = (h: string): string => h.slice(0, 10);
export const notYet = (what: string): string => `<p class="empty">Not yet: ${esc(what)}</p>`;

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(2)} h`;
}
