import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StatusLine, stderrStatus, type StatusStream } from './status.ts';
import { makeRunProgress } from '../cli/run-progress.ts';
import { Llama, makeConfig } from '../nn/model.ts';
import { Tokenizer } from '../nn/tokenizer.ts';
import { initBackend } from '../nn/ops.ts';
import { dpoTrain } from '../nn/dpo.ts';

/** A terminal screen: printable characters overwrite at the cursor, \r returns, \n moves down, ESC[K clears to the end of the line. */
export class FakeTerminal implements StatusStream {
  readonly isTTY = true;
  rows: string[] = [''];
  private row = 0;
  private col = 0;
  constructor(readonly columns = 100) {}
  write(text: string): boolean {
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c === '\r') this.col = 0;
      else if (c === '\n') {
        this.row++;
        this.col = 0;
        this.rows[this.row] ??= '';
      } else if (c === '\x1b' && text.startsWith('\x1b[K', i)) {
        this.rows[this.row] = this.rows[this.row]!.slice(0, this.col);
        i += 2;
      } else if (c === '\x1b') throw new Error(`unexpected escape sequence ${JSON.stringify(text.slice(i, i + 6))}`);
      else {
        const r = this.rows[this.row]!.padEnd(this.col);
        this.rows[this.row] = r.slice(0, this.col) + c + r.slice(this.col + 1);
        this.col++;
      }
    }
    return true;
  }
  get current(): string {
    return this.rows[this.row]!;
  }
}

class FakeLog implements StatusStream {
  readonly isTTY = false;
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
  get lines(): string[] {
    return this.text.split('\n').filter(Boolean);
  }
}

test('status line on a terminal: a shorter line replacing a longer one leaves nothing of the old one; lines are cut to the width', () => {
  const term = new FakeTerminal(60);
  let now = 0;
  const s = new StatusLine(term, { now: () => now });
  s.update('iter 1  48/48  pass 52%  dev best 25.5 median 11.5  ETA 3s');
  now += 1000;
  s.update('dpo step 1/63 loss 0.0176');
  assert.equal(term.current, 'dpo step 1/63 loss 0.0176');
  now += 1000;
  s.update('x'.repeat(200));
  assert.equal(term.current, 'x'.repeat(59));
  // redraws are throttled to one per 100 ms, unless forced
  now += 10;
  s.update('skipped');
  assert.equal(term.current, 'x'.repeat(59));
  s.update('forced', true);
  assert.equal(term.current, 'forced');
  // a kept line stays, the next status goes below it; clear erases the status
  s.line('dpo: 63 steps');
  s.update('iter 2  0/48', true);
  assert.deepEqual(term.rows, ['dpo: 63 steps', 'iter 2  0/48']);
  s.clear();
  assert.deepEqual(term.rows, ['dpo: 63 steps', '']);
});

test('status line elsewhere (a log file): one plain line per phase, a heartbeat at most every 15 s, no carriage returns or escapes', () => {
  const log = new FakeLog();
  let now = 0;
  const s = new StatusLine(log, { now: () => now, timer: false });
  s.phase('iter 1: sampling programs');
  for (let i = 1; i <= 40; i++) {
    now = i * 1000; // an update every second for 40 s
    s.update(`iter 1  ${i}/40`);
  }
  s.phase('final: select');
  now += 14_000;
  s.tick(); // the timer: nothing new within 15 s of the last line
  now += 2_000;
  s.tick(); // 16 s of silence: the latest status again
  assert.deepEqual(log.lines, [
    '[0.0s] iter 1: sampling programs',
    '[15s] iter 1  15/40',
    '[30s] iter 1  30/40',
    '[40s] final: select',
    '[56s] final: select',
  ]);
  assert.ok(!log.text.includes('\r') && !log.text.includes('\x1b'), JSON.stringify(log.text));
  s.clear();
  now += 60_000;
  s.tick();
  assert.equal(log.lines.length, 5, 'nothing after clear()');
});

test("DPO's step line replaces the run's longer line on a terminal without leaving its tail (the shared status line)", async () => {
  await initBackend();
  const term = new FakeTerminal(120);
  const orig = { write: process.stderr.write, isTTY: process.stderr.isTTY, columns: process.stderr.columns };
  const seen: string[] = [];
  Object.assign(process.stderr, { isTTY: true, columns: 120, write: (s: string) => term.write(s) });
  try {
    const progress = makeRunProgress(stderrStatus());
    progress.onEvent({ type: 'iteration', t: 1, temperature: 1.2 });
    progress.onEvent({ type: 'sampled', t: 1, n: 2 });
    progress.onEvent({ type: 'evaluated', t: 1, hash: 'a', done: 2, total: 2, verdict: 'ok', score: 0.5, cached: false });
    assert.equal(term.current, 'iter 1  2/2  pass 100%  dev best 50.0 median 50.0  iteration ETA ?');
    const tok = new Tokenizer();
    const m = Llama.init(makeConfig({ vocab_size: tok.vocabSize, hidden_size: 16, num_attention_heads: 2, num_hidden_layers: 1, intermediate_size: 32, max_position_embeddings: 64 }), 1);
    // the screen as each DPO step ends (before it draws) shows what the step before drew; a sleep of
    // 120 ms per step lets every step pass the 100 ms redraw throttle
    const sleep = new Int32Array(new SharedArrayBuffer(4));
    dpoTrain(m, tok, [{ prompt: 'a', chosen: ' b', rejected: ' c' }], { steps: 3, lr: 1e-3, batchSize: 1, onStep: () => {
      seen.push(term.current);
      Atomics.wait(sleep, 0, 0, 120);
    } });
    m.dispose();
  } finally {
    Object.assign(process.stderr, orig);
    stderrStatus().clear();
  }
  assert.equal(seen[0], 'dpo: 3 steps on 1 pair');
  assert.match(seen[1]!, /^dpo step 1\/3 loss \d+\.\d{4} margin -?\d+\.\d{3} acc \d\.\d\d$/);
  assert.match(seen[2]!, /^dpo step 2\/3 loss \d+\.\d{4} margin -?\d+\.\d{3} acc \d\.\d\d$/);
  assert.match(term.rows[0]!, /^dpo: 3 steps, loss \d+\.\d{4} → \d+\.\d{4}, margin -?\d+\.\d{3}, \d+\.\ds$/);
});

test('run progress with a queue: the queue state (queued, active, done, failed, live workers) follows the evaluation line', () => {
  const term = new FakeTerminal(200);
  let now = 0;
  const progress = makeRunProgress(new StatusLine(term, { now: () => now, redrawMs: 0, timer: false }));
  progress.onEvent({ type: 'iteration', t: 1, temperature: 1.2 });
  progress.onEvent({ type: 'sampled', t: 1, n: 8 });
  progress.onEvent({ type: 'queue', waiting: 9, active: 2, completed: 0, failed: 0, workers: 2 }); // before any evaluation: nothing to append to
  now += 1000;
  progress.onEvent({ type: 'evaluated', t: 1, hash: 'h1', done: 1, total: 8, verdict: 'ok', score: 0.5, cached: false });
  assert.ok(term.current.startsWith('iter 1  1/8  pass 100% '), term.current);
  assert.ok(term.current.endsWith('  queue: 9 queued, 2 active, 0 done, 0 failed, 2 workers'), term.current);
  now += 1000;
  progress.onEvent({ type: 'queue', waiting: 5, active: 2, completed: 4, failed: 1, workers: 1 });
  assert.ok(term.current.startsWith('iter 1  1/8  '), term.current);
  assert.ok(term.current.endsWith('  queue: 5 queued, 2 active, 4 done, 1 failed, 1 worker'), term.current);
});
