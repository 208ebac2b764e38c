import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from '../src/io/testing.ts';
// @ts-expect-error: a plain .mjs script without type declarations
import { findCycles, importGraph, importsOf } from '../scripts/check-cycles.mjs';

const SCRIPT = fileURLToPath(new URL('../scripts/check-cycles.mjs', import.meta.url));

test('check-cycles: reads every kind of import, not comments or strings', () => {
  const src = `import { a } from './a.ts';
import type { B } from './b.ts';
import {
  c,
  type C,
} from './c.ts';
export { d } from './d.ts';
export type { E } from './e.ts';
export * from './f.ts';
import './g.ts';
const h = await import('./h.ts');
// import { x } from './commented.ts';
/* import { y } from './block-commented.ts'; */
const s = "import { z } from './in-a-string.ts'";
import fs from 'node:fs';`;
  assert.deepEqual(importsOf(src), ['./a.ts', './b.ts', './c.ts', './d.ts', './e.ts', './f.ts', './g.ts', './h.ts', 'node:fs']);
});

test('check-cycles: finds circles (type-only ones too) and a shortest path through each; none in a tree', () => {
  const g = new Map<string, string[]>([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a', 'd']],
    ['d', []],
    ['e', ['e']],
    ['f', ['g']],
    ['g', ['f']],
  ]);
  const cycles = findCycles(g) as string[][];
  assert.deepEqual(cycles.map((c) => c.join(' ')).sort(), ['a b c a', 'e e', 'f g f']);
  assert.deepEqual(findCycles(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]])), []);
  // a long chain does not overflow the stack (iterative search)
  const chain = new Map(Array.from({ length: 20000 }, (_, i) => [`n${i}`, i + 1 < 20000 ? [`n${i + 1}`] : ['n0']]));
  assert.equal((findCycles(chain) as string[][])[0]!.length, 20001);

  const tmp = makeTempDir('selfdev-cycles-');
  try {
    const dir = join(tmp.path, 'src');
    mkdirSync(join(dir, 'x'), { recursive: true });
    mkdirSync(join(dir, 'y'), { recursive: true });
    writeFileSync(join(dir, 'x', 'one.ts'), "import { two } from '../y/two.ts';\nimport { pkg } from 'some-package';\nexport const one = two + pkg;\n");
    writeFileSync(join(dir, 'y', 'two.ts'), "import type { T } from '../x/one.ts';\nexport const two = 2 as unknown as T;\n");
    writeFileSync(join(dir, 'y', 'three.ts'), "import { two } from './two.ts';\nexport const three = two + 1;\n");
    const graph = importGraph([dir]) as Map<string, string[]>;
    assert.deepEqual(graph.get(join(dir, 'y', 'three.ts')), [join(dir, 'y', 'two.ts')]);
    assert.deepEqual(findCycles(graph), [[join(dir, 'x', 'one.ts'), join(dir, 'y', 'two.ts'), join(dir, 'x', 'one.ts')]]);
    const bad = spawnSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /1 import circle\(s\):\n {2}.*x\/one\.ts → .*y\/two\.ts → .*x\/one\.ts/);
    writeFileSync(join(dir, 'y', 'two.ts'), 'export const two = 2;\n');
    const good = spawnSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout, /no import circle among 3 files/);
  } finally {
    tmp.cleanup();
  }
});

test('check-cycles: the source tree has no import circle', () => {
  const r = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
