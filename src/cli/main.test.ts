import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from './commands.ts';

const bin = fileURLToPath(new URL('../../bin/selfdev.mjs', import.meta.url));

test('selfdev --help lists every command with its one-line summary', () => {
  const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`\\n  ${c.name}\\s+\\S`), `missing ${c.name}`);
});

test('an unknown command fails with exit code 2 and says which', () => {
  const r = spawnSync(process.execPath, [bin, 'no-such-command'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command 'no-such-command'/);
});
