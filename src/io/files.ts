/**
 * Files where files are expected, and outputs that never touch inputs.
 *
 * - Every file selfdev reads (weights, configs, tokenizers, YAML, algorithms, benchmarks) is opened
 *   without blocking (O_NONBLOCK) and checked with fstat to be a regular file before a byte is read:
 *   a FIFO, a socket, a device or a folder under an expected file name is refused at once instead
 *   of blocking forever or reading garbage. Text files are read whole only up to a size bound.
 * - An output path is compared with the inputs by real path (symlinks resolved, the nearest existing
 *   ancestor of a path that does not exist yet): an output that is an input, lies inside one, or
 *   contains one is refused before anything is written, so `--overwrite` can never destroy an input.
 */
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { CheckpointError } from './errors.ts';

/** Largest text file (config, tokenizer, YAML, JSONL) read whole: 1 GiB. */
export const MAX_TEXT_BYTES = 1 << 30;

function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
}

/**
 * Opens `path` for reading and returns the fd of a regular file (never blocks: O_NONBLOCK, then
 * fstat). `what` names the file in messages ("config.json", "safetensors file", …).
 */
export function openRegularFile(path: string, what = 'file'): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CheckpointError(path, `${what} not found`);
    if (code === 'EISDIR') throw new CheckpointError(path, `${what} is not a regular file (it is a folder)`);
    throw new CheckpointError(path, `cannot open ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CheckpointError(path, `${what} is not a regular file (it is ${kindOf(st)})`);
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** The bytes of a regular file, at most `maxBytes` (then an error naming the size). */
export function readRegularFile(path: string, what = 'file', maxBytes = MAX_TEXT_BYTES): Buffer {
  const { fd, size } = openRegularFile(path, what);
  try {
    if (size > maxBytes) throw new CheckpointError(path, `${what} is ${size} bytes, more than the ${maxBytes} this reader accepts`);
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const got = readSync(fd, buf, done, size - done, done);
      if (got === 0) break;
      done += got;
    }
    return done === size ? buf : buf.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

/** A regular file's text (UTF-8). */
export function readRegularText(path: string, what = 'file', maxBytes = MAX_TEXT_BYTES): string {
  return readRegularFile(path, what, maxBytes).toString('utf8');
}

/** A JSON object read from a regular file; every problem a CheckpointError naming the file. */
export function readJsonObject(path: string, what = basename(path)): Record<string, unknown> {
  const text = readRegularText(path, what);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(path, `${what} is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CheckpointError(path, `${what} is not a JSON object (got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v})`);
  return v as Record<string, unknown>;
}

/**
 * The real path of `p`, also when it does not exist yet: the real path of its nearest existing
 * ancestor, joined with the rest.
 */
export function realPathOf(p: string): string {
  let cur = resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return join(cur, ...rest.reverse());
      rest.push(basename(cur));
      cur = parent;
    }
  }
}

function inside(child: string, parent: string): boolean {
  const r = relative(parent, child);
  return r !== '' && !r.startsWith('..' + sep) && r !== '..' && !isAbsolute(r);
}

export interface OutputInput {
  path: string;
  /** How the input is named in messages, e.g. "base_model ./seed". */
  what: string;
}

/**
 * Refuses an output path that is an input, lies inside an input folder, or contains an input
 * (real paths compared). `inputs` are files or folders the command reads.
 */
export function checkOutputPath(output: string, inputs: readonly OutputInput[], outputWhat = 'output'): void {
  const out = realPathOf(output);
  for (const inp of inputs) {
    const p = realPathOf(inp.path);
    if (out === p) throw new CheckpointError(output, `${outputWhat} is an input (${inp.what}); choose another path`);
    if (inside(out, p)) throw new CheckpointError(output, `${outputWhat} lies inside an input (${inp.what}); choose a path outside it`);
    if (inside(p, out)) throw new CheckpointError(output, `${outputWhat} contains an input (${inp.what}); choose another path`);
  }
}
