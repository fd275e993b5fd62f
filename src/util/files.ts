/**
 * Reading user-supplied files defensively, and the small checks every writer shares.
 *
 * Reads open with O_NONBLOCK and check the file type on the open descriptor before reading,
 * so a FIFO where a file should be is refused instead of blocking the process, a device such
 * as /dev/zero is refused instead of read without end, and every file is read up to a stated
 * size limit. Every error names the file.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';

/** Limits on what the loaders read into memory, by kind of file. */
export const READ_LIMITS = {
  /** config.json, trainer-state.json, data configs, manifests. */
  json: 16 << 20,
  /** tokenizer.json: up to 2^21 pieces. */
  tokenizer: 256 << 20,
  /** Token-row files for `glam score`. */
  tokens: 64 << 20,
  /** One line of metrics.jsonl. */
  line: 4 << 20,
} as const;

/** What kind of file system object `st` is, in words. */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function openError(file: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new Error(`${file}: file not found`);
  if (code === 'EACCES') return new Error(`${file}: permission denied`);
  if (code === 'ENOTDIR') return new Error(`${file}: a component of the path is not a directory`);
  return new Error(`${file}: cannot open (${code ?? String(err)})`);
}

const NONBLOCK = constants.O_NONBLOCK ?? 0;

/**
 * Open `file` for reading and check that it is a regular file (not a FIFO, device,
 * directory or socket) before anything is read. Returns the descriptor and size; the
 * caller closes it. Symbolic links are followed: reading through one is harmless.
 */
export function openRegularFile(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | NONBLOCK);
  } catch (err) {
    throw openError(file, err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${file}: not a regular file (${fileKind(st)})`);
    return { fd, size: st.size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** Run `body` on a regular file opened for reading (see openRegularFile); always closes it. */
export function withRegularFile<T>(file: string, body: (fd: number, size: number) => T): T {
  const { fd, size } = openRegularFile(file);
  try {
    return body(fd, size);
  } finally {
    closeSync(fd);
  }
}

function formatBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(n % (1 << 20) === 0 ? 0 : 1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(n % (1 << 10) === 0 ? 0 : 1)} KiB`;
  return `${n} bytes`;
}

/**
 * The whole of a regular file as UTF-8 text, refusing files over `maxBytes` (checked on the
 * size before reading, and again while reading in case the file grows). `what` names the
 * kind of file in the error ("model config", "tokenizer", ...).
 */
export function readTextFile(file: string, maxBytes: number, what = 'file'): string {
  return withRegularFile(file, (fd, size) => {
    const limitMessage = (n: string) =>
      `${file}: ${n} is over the ${formatBytes(maxBytes)} limit for a ${what}; is this the right file?`;
    if (size > maxBytes) throw new Error(limitMessage(`${formatBytes(size)}`));
    const buf = Buffer.alloc(Math.min(size, maxBytes) + 1);
    let got = 0;
    for (;;) {
      if (got === buf.length) throw new Error(limitMessage('the file (still growing)'));
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.toString('utf8', 0, got);
  });
}

/** The first `n` bytes (at most) of a regular file, as UTF-8 text. */
export function readHead(file: string, n: number): string {
  return withRegularFile(file, (fd, size) => {
    const buf = Buffer.alloc(Math.min(n, size));
    const got = readSync(fd, buf, 0, buf.length, 0);
    return buf.toString('utf8', 0, got);
  });
}

/**
 * Parse a regular file of at most `maxBytes` as JSON. Errors name the file: not found, not a
 * regular file, too large, or not valid JSON (with the parser's message).
 */
export function readJsonFile(file: string, maxBytes: number, what = 'JSON file'): unknown {
  const text = readTextFile(file, maxBytes, what);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Lines of a regular file, read in chunks (memory bounded by the longest line, at most
 * `maxLine` bytes). The last line is yielded even without a trailing newline, flagged
 * `partial` so callers can tell a line cut short by a crash.
 */
export function* readLines(
  file: string,
  maxLine: number = READ_LIMITS.line,
): Generator<{ line: string; number: number; partial: boolean }> {
  const { fd } = openRegularFile(file);
  try {
    const chunk = Buffer.alloc(1 << 16);
    let carry = Buffer.alloc(0);
    let pos = 0;
    let number = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, pos);
      if (n === 0) break;
      pos += n;
      let data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let start = 0;
      for (let nl = data.indexOf(10, start); nl >= 0; nl = data.indexOf(10, start)) {
        number++;
        yield { line: data.toString('utf8', start, nl), number, partial: false };
        start = nl + 1;
      }
      data = data.subarray(start);
      if (data.length > maxLine)
        throw new Error(`${file}:${number + 1}: line longer than ${formatBytes(maxLine)}`);
      carry = Buffer.from(data);
    }
    if (carry.length > 0) yield { line: carry.toString('utf8'), number: number + 1, partial: true };
  } finally {
    closeSync(fd);
  }
}

/** lstat without following a final symbolic link; undefined when nothing is there. */
export function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** `s` cut to at most `max` characters (a path or name from a user's file, for a message). */
export function clip(s: string, max = 200): string {
  return s.length > max ? `${s.slice(0, max)}... (${s.length} characters)` : s;
}

/**
 * A short, bounded rendering of a value from a user's file for an error message: never
 * recursing deeper than a few levels or running longer than `max` characters (so a
 * 200,000-deep array or a huge string cannot blow the stack or flood the terminal).
 */
export function briefValue(v: unknown, max = 60): string {
  const render = (x: unknown, depth: number): string => {
    if (x === null) return 'null';
    if (typeof x === 'number') return String(x); // Infinity and NaN too, unlike JSON.stringify
    if (typeof x === 'string') return JSON.stringify(x.length > max ? `${x.slice(0, max)}...` : x);
    if (typeof x === 'boolean') return String(x);
    if (x === undefined) return 'nothing';
    if (Array.isArray(x)) {
      if (depth >= 3) return '[...]';
      const items: string[] = [];
      let len = 2;
      for (const item of x) {
        if (len > max) break;
        const s = render(item, depth + 1);
        items.push(s);
        len += s.length + 2;
      }
      if (items.length < x.length) items.push('...');
      return `[${items.join(', ')}]`;
    }
    if (typeof x === 'object') {
      if (depth >= 3) return '{...}';
      const parts: string[] = [];
      let len = 2;
      const entries = Object.entries(x as Record<string, unknown>);
      for (const [k, val] of entries) {
        if (len > max) break;
        const s = `${JSON.stringify(k)}: ${render(val, depth + 1)}`;
        parts.push(s);
        len += s.length + 2;
      }
      if (parts.length < entries.length) parts.push('...');
      return `{${parts.join(', ')}}`;
    }
    return typeof x;
  };
  const s = render(v, 0);
  return s.length > max * 2 ? `${s.slice(0, max * 2)}...` : s;
}
