// `selfdev run` as a CI job, nohup or SLURM sees it (stderr not a terminal), and the report it leaves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { makeTempDir } from '../io/testing.ts';
import { RunStore } from '../store/store.ts';
import { builtinLoopConfig, microBuiltinWorld } from '../loop/testing.ts';

const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));

/** `[1m05s]` → seconds. */
function elapsed(prefix: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?$/.exec(prefix);
  if (!m) throw new Error(`not an elapsed time: ${prefix}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

test('selfdev run without a terminal: a plain line per phase (sampling, evaluating, DPO, select, test, baselines, transfer), heartbeats 15 s apart, no redraws; the report of the finished run says done', { timeout: 300_000 }, async () => {
  const tmp = makeTempDir('selfdev-run-output-');
  try {
    // the builtin factory writes three programs that score differently, so DPO has pairs
    const { world: w, factoryDir } = await microBuiltinWorld(tmp.path, 1);
    const cfgPath = join(tmp.path, 'run.yml');
    writeFileSync(cfgPath, stringify({ ...builtinLoopConfig(w, factoryDir), name: 'plain', workers: 1 }));
    const out = join(tmp.path, 'out');
    const r = spawnSync(process.execPath, [bin, 'run', cfgPath, '--out', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!r.stderr.includes('\r') && !r.stderr.includes('\x1b'), `no carriage return or escape sequence in a log: ${JSON.stringify(r.stderr)}`);
    const lines = r.stderr.split('\n').filter(Boolean).map((l) => {
      const m = /^\[([^\]]+)\] (.*)$/.exec(l);
      assert.ok(m, `a plain progress line starts with the elapsed time: ${JSON.stringify(l)}`);
      return { at: elapsed(m[1]!), text: m[2]! };
    });
    const phases = [
      /^iter 1: sampling programs \(T 1\.20\)$/, /^iter 1: evaluating 6 sampled programs$/, /^dpo: \d+ steps? on \d+ pairs?$/, /^dpo: \d+ steps?, loss \d+\.\d{4} → \d+\.\d{4}/,
      /^iter 2: sampling programs \(T 1\.00\)$/, /^iter 2: evaluating 6 sampled programs$/,
      /^final: select$/, /^final: test$/, /^final: baselines$/, /^final: transfer$/, /^done$/,
    ];
    let at = 0;
    for (const re of phases) {
      const i = lines.findIndex((l, k) => k >= at && re.test(l.text));
      assert.ok(i >= 0, `phase line ${re} after line ${at} in:\n${r.stderr}`);
      at = i + 1;
    }
    // every other line is a heartbeat, printed 15 s or more after the line before it
    const heartbeats = lines.map((l, i) => ({ ...l, i })).filter((l) => !phases.some((re) => re.test(l.text)));
    for (const h of heartbeats) {
      assert.match(h.text, /^(iter \d+ {2}\d+\/\d+ {2}pass|dpo step \d+\/\d+|final: \w+ {2}\d+\/\d+)/, h.text);
      assert.ok(h.at - lines[h.i - 1]!.at >= 14.9, `heartbeat ${h.text} only ${h.at - lines[h.i - 1]!.at} s after the line before`);
    }

    // the report written at the end shows the finished run, with the store's times
    const store = RunStore.open(out, { readonly: true });
    const run = store.run();
    store.close();
    assert.equal(run.status, 'done');
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const meta = (k: string) => new RegExp(`<span class="k">${k}</span><span class="v">([^<]*(?:<span[^>]*>[^<]*</span>)?)</span>`).exec(html)?.[1];
    assert.equal(meta('status'), '<span class="badge status-done">done</span>');
    const utc = (ts: string) => ts.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    assert.equal(meta('updated'), utc(run.updatedAt));
    assert.equal(meta('finished'), utc(run.finishedAt!));
    assert.equal(meta('iterations'), '2 done / 2 started');
  } finally {
    tmp.cleanup();
  }
});
