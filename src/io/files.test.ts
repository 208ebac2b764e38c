import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkOutputPath, openRegularFile, readJsonObject, readRegularText, realPathOf } from './files.ts';
import { oneLine } from './errors.ts';
import { makeTempDir } from './testing.ts';

const tmp = makeTempDir('selfdev-files-');
test.after(() => tmp.cleanup());

test('only regular files are opened: a FIFO, a folder or a device is refused without blocking', () => {
  const fifo = join(tmp.path, 'pipe');
  execFileSync('mkfifo', [fifo]);
  assert.throws(() => openRegularFile(fifo, 'config.json'), /config\.json is not a regular file \(it is a FIFO/);
  mkdirSync(join(tmp.path, 'dir'));
  assert.throws(() => readRegularText(join(tmp.path, 'dir'), 'tokenizer.json'), /tokenizer\.json is not a regular file \(it is a folder\)/);
  assert.throws(() => readRegularText('/dev/zero', 'x'), /x is not a regular file \(it is a device\)/);
  assert.throws(() => readRegularText(join(tmp.path, 'none'), 'x'), /x not found/);
  writeFileSync(join(tmp.path, 'big'), 'x'.repeat(100));
  assert.throws(() => readRegularText(join(tmp.path, 'big'), 'x', 10), /100 bytes, more than the 10/);
  writeFileSync(join(tmp.path, 'a.json'), '[1]');
  assert.throws(() => readJsonObject(join(tmp.path, 'a.json')), /not a JSON object \(got an array\)/);
  writeFileSync(join(tmp.path, 'b.json'), '{\n"a": \n');
  assert.throws(() => readJsonObject(join(tmp.path, 'b.json')), (e: Error) => /not valid JSON/.test(e.message) && !e.message.includes('\n'));
});

test('an output that is, lies inside or contains an input is refused, symlinks resolved', () => {
  const input = join(tmp.path, 'in', 'model');
  mkdirSync(input, { recursive: true });
  symlinkSync(input, join(tmp.path, 'link'));
  const inputs = [{ path: input, what: 'base_model' }];
  assert.throws(() => checkOutputPath(input, inputs), /output is an input \(base_model\)/);
  assert.throws(() => checkOutputPath(join(tmp.path, 'link'), inputs), /is an input/);
  assert.throws(() => checkOutputPath(join(tmp.path, 'link', 'a', 'b'), inputs), /lies inside an input/);
  assert.throws(() => checkOutputPath(join(tmp.path, 'in'), inputs), /contains an input/);
  checkOutputPath(join(tmp.path, 'in', 'model-out'), inputs);
  checkOutputPath(join(tmp.path, 'elsewhere', 'new'), inputs);
  assert.equal(realPathOf(join(tmp.path, 'link', 'x', 'y')), join(realPathOf(input), 'x', 'y'));
});

test('oneLine escapes control characters', () => {
  assert.equal(oneLine('a\nb\tc\u0000'), 'a\\nb\\tc\\u0000');
});
