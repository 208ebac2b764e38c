// Hand-written SVG chart primitives for report.html: scales, ticks, axes, legends. Every piece of
// text goes through esc(); numbers are formatted with fixed precision.

/** Escapes text for HTML/SVG element content and attribute values. */
export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export const n2 = (v: number): string => (Math.round(v * 100) / 100).toString();

export interface Scale {
  (v: number): number;
  domain: [number, number];
  range: [number, number];
}

export function scaleLinear(domain: [number, number], range: [number, number]): Scale {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0 || 1;
  const f = ((v: number) => r0 + ((v - d0) / span) * (r1 - r0)) as Scale;
  f.domain = domain;
  f.range = range;
  return f;
}

/** "Nice" tick values covering [min, max] with about `count` ticks. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) {
    const d = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    min -= d;
    max += d;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const start = Math.ceil(min / step - 1e-9) * step;
  const out: number[] = [];
  for (let v = start; v <= max + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out.map((v) => Number(v.toPrecision(12)));
}

/** Domain expanded to nice tick boundaries. */
export function niceDomain(min: number, max: number, count = 5): [number, number] {
  if (min === max) {
    const d = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    return [min - d, max + d];
  }
  const t = niceTicks(min, max, count);
  const step = t.length > 1 ? t[1] - t[0] : (max - min) / count;
  const round = (v: number) => Number(v.toPrecision(12));
  return [Math.min(min, round(Math.floor(min / step + 1e-9) * step)), Math.max(max, round(Math.ceil(max / step - 1e-9) * step))];
}

export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export const innerW = (f: Frame): number => f.width - f.left - f.right;
export const innerH = (f: Frame): number => f.height - f.top - f.bottom;

export function svgOpen(f: Frame, chart: string, title: string): string {
  return `<svg class="chart" data-chart="${esc(chart)}" viewBox="0 0 ${f.width} ${f.height}" role="img" aria-label="${esc(title)}" xmlns="http://www.w3.org/2000/svg"><title>${esc(title)}</title>`;
}

/** Left axis with horizontal grid lines and a rotated label. */
export function axisLeft(f: Frame, y: Scale, ticks: number[], label: string, fmt: (v: number) => string): string {
  const x0 = f.left;
  const x1 = f.width - f.right;
  let s = '<g class="axis axis-y">';
  for (const t of ticks) {
    const yy = n2(y(t));
    s += `<line class="grid" x1="${x0}" x2="${x1}" y1="${yy}" y2="${yy}"/>`;
    s += `<text x="${x0 - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle">${esc(fmt(t))}</text>`;
  }
  const cy = f.top + innerH(f) / 2;
  s += `<text class="axis-label" transform="translate(${14} ${n2(cy)}) rotate(-90)" text-anchor="middle">${esc(label)}</text>`;
  return s + '</g>';
}

/** Bottom axis: numeric ticks or categorical labels at given positions. */
export function axisBottom(f: Frame, ticks: { x: number; label: string }[], label: string): string {
  const y0 = f.height - f.bottom;
  let s = `<g class="axis axis-x"><line class="domain" x1="${f.left}" x2="${f.width - f.right}" y1="${y0}" y2="${y0}"/>`;
  for (const t of ticks) {
    s += `<line class="tick" x1="${n2(t.x)}" x2="${n2(t.x)}" y1="${y0}" y2="${y0 + 5}"/>`;
    s += `<text x="${n2(t.x)}" y="${y0 + 18}" text-anchor="middle">${esc(t.label)}</text>`;
  }
  s += `<text class="axis-label" x="${n2(f.left + innerW(f) / 2)}" y="${f.height - 6}" text-anchor="middle">${esc(label)}</text>`;
  return s + '</g>';
}

export interface LegendItem {
  label: string;
  color: string;
  kind?: 'dot' | 'line' | 'dash' | 'box';
}

const itemWidth = (it: LegendItem): number => 26 + it.label.length * 6.8 + 14;

/** Splits legend items into rows that fit the frame's inner width. */
export function legendRows(f: Frame, items: LegendItem[]): LegendItem[][] {
  const rows: LegendItem[][] = [];
  let w = 0;
  for (const it of items) {
    const iw = itemWidth(it);
    if (!rows.length || w + iw > innerW(f)) {
      rows.push([]);
      w = 0;
    }
    rows[rows.length - 1].push(it);
    w += iw;
  }
  return rows;
}

/** The frame with its top margin grown so a wrapped legend fits above the plot. */
export function withLegend(f: Frame, items: LegendItem[]): Frame {
  const extra = Math.max(0, legendRows(f, items).length - 1) * 20;
  return { ...f, top: f.top + extra, height: f.height + extra };
}

/** Legend in the top margin: right-aligned rows of items, wrapped to the frame's inner width. */
export function legend(f: Frame, items: LegendItem[]): string {
  if (items.length === 0) return '';
  let s = '<g class="legend">';
  legendRows(f, items).forEach((row, r) => {
    let x = f.width - f.right - row.reduce((a, it) => a + itemWidth(it), 0);
    x = Math.max(f.left, x);
    const y = 14 + r * 20;
    for (const it of row) {
      const k = it.kind ?? 'box';
      if (k === 'dot') s += `<circle cx="${n2(x + 8)}" cy="${y}" r="5" fill="${it.color}"/>`;
      else if (k === 'line' || k === 'dash')
        s += `<line x1="${n2(x)}" x2="${n2(x + 18)}" y1="${y}" y2="${y}" stroke="${it.color}" stroke-width="2.5"${k === 'dash' ? ' stroke-dasharray="5 3"' : ''}/>`;
      else s += `<rect x="${n2(x + 2)}" y="${y - 6}" width="12" height="12" rx="2" fill="${it.color}"/>`;
      s += `<text x="${n2(x + 24)}" y="${y}" dominant-baseline="middle">${esc(it.label)}</text>`;
      x += itemWidth(it);
    }
  });
  return s + '</g>';
}

export function polyline(points: [number, number][], color: string, opts: { dash?: boolean; width?: number; cls?: string } = {}): string {
  if (points.length === 0) return '';
  const d = points.map(([x, y], i) => `${i ? 'L' : 'M'}${n2(x)} ${n2(y)}`).join(' ');
  return `<path class="${opts.cls ?? 'line'}" d="${d}" fill="none" stroke="${color}" stroke-width="${opts.width ?? 2.5}"${opts.dash ? ' stroke-dasharray="6 4"' : ''} stroke-linejoin="round" stroke-linecap="round"/>`;
}
