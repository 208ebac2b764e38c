import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { makeTempDir } from '../io/testing.ts';
import { makeMicroWorld } from '../world/testing.ts';

const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));
const run = (args: string[]) => spawnSync(process.execPath, [bin, 'run', ...args], { encoding: 'utf8' });

test('selfdev run: usage errors name the problem', () => {
  const tmp = makeTempDir('selfdev-run-cli-');
  try {
    let r = run([]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--out DIR is required/);
    r = run(['--out', join(tmp.path, 'x'), '--resume']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /holds no run to resume/);
    const bad = join(tmp.path, 'bad.yml');
    writeFileSync(bad, 'iterations: 2\nbogus: 1\n');
    r = run([bad, '--out', join(tmp.path, 'y')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /bad\.yml: unknown key bogus/);
    writeFileSync(bad, 'iterations: 0\nworld: { seedModel: s, experts: [e] }\n');
    r = run([bad, '--out', join(tmp.path, 'y')]);
    assert.match(r.stderr, /iterations must be a positive integer/);
    assert.ok(!existsSync(join(tmp.path, 'y', 'run.sqlite')), 'no run is created for a bad config');
  } finally {
    tmp.cleanup();
  }
});

test('selfdev run: a 1-iteration run prints the table and report path; a second start without --resume is refused; --resume finishes at once', async () => {
  const tmp = makeTempDir('selfdev-run-cli-');
  try {
    const w = await makeMicroWorld(tmp.path, { nExperts: 2, nOod: 0, nDev: 2, nTest: 2 });
    const cfgPath = join(tmp.path, 'run.yml');
    writeFileSync(cfgPath, stringify({ name: 'cli', iterations: 1, samplesPerIteration: 3, eval: { devSubset: 1, maxTokens: 4 }, topKTest: 2, baselines: { lambdas: [0.5] }, world: w }));
    const out = join(tmp.path, 'out');
    let r = run([cfgPath, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /rank\s+program\s+dev\s+test/);
    assert.match(r.stdout, /task_arithmetic \(in-domain\)/);
    assert.match(r.stdout, new RegExp(`report: ${join(out, 'report.html').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    assert.ok(existsSync(join(out, 'best-merge.yml')));
    r = run([cfgPath, '--out', out]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /already holds a run; pass --resume/);
    r = run(['--out', out, '--resume', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim()) as { report: string };
    assert.equal(j.report, join(out, 'report.html'));
  } finally {
    tmp.cleanup();
  }
});
