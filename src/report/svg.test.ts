import { test } from 'node:test';
import assert from 'node:assert/strict';
import { esc, niceTicks, niceDomain, scaleLinear, legendRows, withLegend } from './svg.ts';
import type { Frame } from './svg.ts';

test('esc escapes the five HTML-significant characters', () => {
  assert.equal(esc(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  assert.equal(esc(42), '42');
});

test('niceTicks and niceDomain give round steps covering the range', () => {
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0.13, 0.81, 5), [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
  assert.deepEqual(niceTicks(0, 66, 5), [0, 10, 20, 30, 40, 50, 60]);
  assert.deepEqual(niceDomain(0.13, 0.81), [0.1, 0.9]);
  assert.deepEqual(niceDomain(0, 66), [0, 70]);
  const [a, b] = niceDomain(5, 5);
  assert.ok(a < 5 && b > 5, 'a degenerate range is widened');
  assert.deepEqual(niceTicks(Number.NaN, 1), []);
});

test('scaleLinear maps domain ends to range ends (inverted y axis too)', () => {
  const y = scaleLinear([0, 1], [300, 20]);
  assert.equal(y(0), 300);
  assert.equal(y(1), 20);
  assert.equal(y(0.5), 160);
});

test('legends wrap to the inner width and grow the top margin', () => {
  const f: Frame = { width: 300, height: 200, left: 50, right: 10, top: 30, bottom: 40 };
  const items = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'].map((label) => ({ label, color: '#000' }));
  const rows = legendRows(f, items);
  assert.ok(rows.length > 1);
  assert.deepEqual(rows.flat().map((i) => i.label), items.map((i) => i.label));
  const g = withLegend(f, items);
  assert.equal(g.top - f.top, (rows.length - 1) * 20);
  assert.equal(g.height - f.height, (rows.length - 1) * 20);
});
