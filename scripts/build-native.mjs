#!/usr/bin/env node
// Builds the optional native kernels (binding.gyp -> build/Release/selfdev_native.node) with the
// node-gyp that ships inside npm. Never fails the install: on any error it prints a warning and
// exits 0, and the pure-JS kernels keep working (src/tensor/native.ts loads the addon if present).
// Set SELFDEV_NO_NATIVE=1 to skip the build entirely.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function warn(msg) {
  console.warn(`selfdev: native kernels not built (${msg}); using the JavaScript kernels (slower, same results).`);
}

function findNodeGyp() {
  const cands = [];
  if (process.env.npm_config_node_gyp) cands.push(process.env.npm_config_node_gyp);
  const execDir = dirname(process.execPath);
  cands.push(join(execDir, '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  if (process.env.npm_execpath) cands.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  cands.push('/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  cands.push('/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  return cands.find((p) => existsSync(p));
}

function main() {
  if (process.env.SELFDEV_NO_NATIVE === '1') {
    console.log('selfdev: SELFDEV_NO_NATIVE=1, skipping the native kernels build.');
    return;
  }
  const gyp = findNodeGyp();
  if (!gyp) return warn('node-gyp not found next to npm');
  const args = [gyp, 'rebuild', '--release'];
  // Debian/Ubuntu nodejs packages put the headers in /usr/include/node: use them, offline.
  const nodedir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : '');
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 180_000 });
  const out = join(root, 'build', 'Release', 'selfdev_native.node');
  if (r.error || r.status !== 0 || !existsSync(out)) {
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => /error|Error|not found/.test(l)).slice(-8).join('\n');
    if (tail) console.warn(tail);
    return warn(r.error ? r.error.message : `node-gyp exited with ${r.status}`);
  }
  console.log(`selfdev: native kernels built in ${((Date.now() - t0) / 1000).toFixed(1)} s (${out}).`);
}

try {
  main();
} catch (e) {
  warn(e instanceof Error ? e.message : String(e));
}
process.exit(0);
