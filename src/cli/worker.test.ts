import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));
const cli = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });

test('selfdev worker and run --queue: bad options fail with exit code 2 and say what is wrong, before connecting', () => {
  const cases: [string[], RegExp][] = [
    [['worker', '--root', '.'], /selfdev worker: --queue redis:\/\/HOST:PORT\/DB is required/],
    [['worker', '--queue', 'redis://127.0.0.1:6379/0'], /--root DIR is required/],
    [['worker', '--queue', 'http://127.0.0.1:6379/0', '--root', '.'], /--queue must start with redis:\/\/ or rediss:\/\//],
    [['worker', '--queue', 'redis://127.0.0.1:6379', '--root', '.'], /--queue needs a database number as its path/],
    [['worker', '--queue', 'redis://127.0.0.1:6379/0', '--root', '/no/such/dir'], /--root \/no\/such\/dir is not a folder/],
    [['worker', '--queue', 'redis://127.0.0.1:6379/0', '--root', '.', '--concurrency', '0'], /--concurrency must be an integer >= 1, got '0'/],
    [['worker', '--queue', 'redis://127.0.0.1:6379/0', '--root', '.', '--exit-when-idle=-1'], /--exit-when-idle must be a number of seconds >= 0, got '-1'/],
    [['run', 'configs/embedded.yml', '--out', '/tmp/selfdev-never-created', '--queue', 'redis://127.0.0.1/0'], /selfdev run: --queue needs an explicit port/],
  ];
  for (const [args, re] of cases) {
    const r = cli(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  }
});

test('selfdev worker --help describes the options', () => {
  const r = cli(['worker', '--help']);
  assert.equal(r.status, 0);
  for (const o of ['--queue URL', '--root DIR', '--concurrency N', '--exit-when-idle SECS', 'SIGTERM']) assert.ok(r.stdout.includes(o), o);
});
