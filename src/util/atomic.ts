/**
 * Atomic file replacement: write a temporary file in the target's directory,
 * fsync it, rename it over the target, then fsync the directory so the rename
 * itself survives a crash. Readers see either the old file or the new one,
 * never a half-written one; on any error the temporary file is removed and the
 * target is untouched.
 *
 * Never through a symbolic link: the temporary file is created exclusively (O_EXCL, which
 * does not follow links), and a target that is a symbolic link, a directory or anything but
 * a regular file is refused rather than replaced, since glam did not write it.
 *
 * Synchronous on purpose: callers write checkpoints between training steps and
 * small state files from exit paths, where ordering matters more than overlap.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { fileKind, lstatOrUndefined } from './files.js';

/** Name pattern of the temporary files atomicWriteSync creates (for cleaners that must prove ownership). */
export const ATOMIC_TEMP = /^\..+\.\d+\.[0-9a-f]{8}\.tmp$/;

/** Throw unless `target` is absent or a regular file (never a symbolic link), naming what is there. */
export function requireReplaceable(target: string): void {
  const st = lstatOrUndefined(target);
  if (st === undefined || st.isFile()) return;
  const what = st.isSymbolicLink() ? 'a symbolic link' : fileKind(st);
  throw new Error(
    `${target} is ${what}; glam writes only regular files it creates and will not replace it (remove it or choose another path)`,
  );
}

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
  requireReplaceable(target);
  const tmp = tempPathFor(target);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
  const fd = openSync(tmp, flags, 0o644);
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

/**
 * Open `file` for appending, creating it if needed, without following a symbolic link
 * (O_NOFOLLOW) and refusing anything but a regular file.
 */
export function openAppendNoFollow(file: string): number {
  requireReplaceable(file);
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0);
  let fd: number;
  try {
    fd = openSync(file, flags, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP')
      throw new Error(`${file} is a symbolic link; glam will not write through it`);
    throw err;
  }
  return fd;
}
