#!/usr/bin/env node
// Fails when the relative imports of the TypeScript files under the given folders (default: src)
// form a circle. Every kind of import counts: `import`, `import type`, `export … from` and
// `import('…')` with a literal path (read with TypeScript's own pre-processor, so comments and
// strings are not mistaken for imports). Package imports are ignored.
//
//   node scripts/check-cycles.mjs [DIR ...]     (part of `npm run lint`; tested in test/check-cycles.test.ts)
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const EXTENSIONS = ['.ts', '.mts', '.tsx'];

/** The module specifiers a source text imports (static, type-only, re-exports and literal dynamic imports). */
export function importsOf(text) {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** The file a relative specifier names (the project writes `.ts` extensions; `.js` and bare paths are tried too), or null. */
export function resolveImport(from, spec) {
  if (!spec.startsWith('./') && !spec.startsWith('../')) return null;
  const base = resolve(dirname(from), spec);
  const cands = [base, base.replace(/\.[cm]?js$/, '.ts'), ...EXTENSIONS.map((e) => base + e), ...EXTENSIONS.map((e) => join(base, `index${e}`))];
  return cands.find((p) => existsSync(p) && statSync(p).isFile()) ?? null;
}

function sourceFiles(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (EXTENSIONS.some((e) => name.endsWith(e)) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** file → the files it imports (only files inside the scanned folders). */
export function importGraph(dirs) {
  const files = dirs.flatMap((d) => sourceFiles(resolve(d)));
  const known = new Set(files);
  const graph = new Map();
  for (const f of files) {
    const deps = new Set();
    for (const spec of importsOf(readFileSync(f, 'utf8'))) {
      const to = resolveImport(f, spec);
      if (to && known.has(to)) deps.add(to);
    }
    graph.set(f, [...deps].sort());
  }
  return graph;
}

/**
 * The circles of a graph: one path per strongly connected component with more than one file (or a
 * file importing itself), each as [a, b, …, a]. Iterative Tarjan, so deep graphs do not overflow.
 */
export function findCycles(graph) {
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const comps = [];
  let next = 0;
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const work = [[root, 0]];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length) {
      const top = work[work.length - 1];
      const [v, i] = top;
      const deps = graph.get(v) ?? [];
      if (i < deps.length) {
        top[1]++;
        const w = deps[i];
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          work.push([w, 0]);
        } else if (onStack.has(w)) {
          low.set(v, Math.min(low.get(v), index.get(w)));
        }
        continue;
      }
      work.pop();
      if (work.length) {
        const u = work[work.length - 1][0];
        low.set(u, Math.min(low.get(u), low.get(v)));
      }
      if (low.get(v) === index.get(v)) {
        const comp = [];
        let w;
        do {
          w = stack.pop();
          onStack.delete(w);
          comp.push(w);
        } while (w !== v);
        if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) comps.push(comp);
      }
    }
  }
  return comps.map((comp) => cycleIn(graph, new Set(comp)));
}

/** A shortest circle through the component's first file (breadth-first inside the component). */
function cycleIn(graph, comp) {
  const start = [...comp].sort()[0];
  const prev = new Map();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift();
    for (const w of graph.get(v) ?? []) {
      if (!comp.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let x = v; x !== start; x = prev.get(x)) path.splice(1, 0, x);
        return [...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

function main() {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const dirs = process.argv.slice(2).length ? process.argv.slice(2) : [join(root, 'src')];
  const graph = importGraph(dirs);
  const cycles = findCycles(graph);
  const rel = (p) => relative(process.cwd(), p);
  if (cycles.length === 0) {
    console.log(`check-cycles: no import circle among ${graph.size} files (${dirs.map(rel).join(', ')})`);
    return 0;
  }
  console.error(`check-cycles: ${cycles.length} import circle(s):`);
  for (const c of cycles) console.error(`  ${c.map(rel).join(' → ')}`);
  return 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) process.exit(main());
