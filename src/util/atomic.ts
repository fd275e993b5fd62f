/**
 * Atomic file replacement: write a temporary file in the target's directory,
 * fsync it, rename it over the target, then fsync the directory so the rename
 * itself survives a crash. Readers see either the old file or the new one,
 * never a half-written one; on any error the temporary file is removed and the
 * target is untouched.
 *
 * Synchronous on purpose: callers write checkpoints between training steps and
 * small state files from exit paths, where ordering matters more than overlap.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import * as path from 'node:path';

function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Make a rename durable. Some platforms cannot open or fsync a directory; that is not an error there. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES') throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Atomically replace `target` with what `write` writes to the open temporary file descriptor. */
export function atomicWriteSync(target: string, write: (fd: number) => void): void {
  const tmp = tempPathFor(target);
  const fd = openSync(tmp, 'wx', 0o644);
  let closed = false;
  let renamed = false;
  try {
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    closed = true;
    renameSync(tmp, target);
    renamed = true;
  } finally {
    if (!renamed) {
      if (!closed) {
        try {
          closeSync(fd);
        } catch {}
      }
      try {
        unlinkSync(tmp);
      } catch {}
    }
  }
  fsyncDir(path.dirname(target));
}

/** Write all of `bytes` at the descriptor's current position (one write may write less than asked). */
export function writeFullySync(fd: number, bytes: Uint8Array): void {
  // Node caps one write at 2 GiB - 1; chunk well below that.
  const CHUNK = 1 << 26;
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, Math.min(CHUNK, bytes.length - off));
}

/** Atomically replace `target` with `data` (a string is written as UTF-8). */
export function atomicWriteFileSync(target: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  atomicWriteSync(target, (fd) => writeFullySync(fd, bytes));
}

/** Atomically write `value` as pretty-printed JSON with a trailing newline. */
export function atomicWriteJsonSync(target: string, value: unknown): void {
  atomicWriteFileSync(target, `${JSON.stringify(value, null, 2)}\n`);
}
