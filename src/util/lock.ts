/**
 * An exclusive lock on a directory a process writes (a training run): a small JSON file
 * created with O_EXCL that names its holder (pid, host, command, start time). A second
 * process is refused with the holder's identity. A lock left by a process that no longer
 * exists on this host (killed with -9, machine rebooted) is stale: it is taken over, and the
 * caller is told. A lock held from another host cannot be checked and is never taken over.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { fileKind, readTextFile } from './files.js';

export const LOCK_FORMAT = 'glam-moe-lock/1';

export interface LockInfo {
  format: typeof LOCK_FORMAT;
  pid: number;
  host: string;
  /** What holds it, e.g. "glam train". */
  command: string;
  /** ISO time the lock was taken. */
  since: string;
  /** Linux: the kernel's boot id and the holder's start time, to tell a reused pid. */
  boot_id?: string;
  start_time?: string;
  /** Random, so a holder releases only its own lock. */
  token: string;
}

/** A small system file (/proc), or undefined. */
function readOptional(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The lock file's text, or undefined: read without blocking (a FIFO there is not a lock) and bounded. */
function readLockText(file: string): string | undefined {
  try {
    return readTextFile(file, 1 << 16, 'lock file').trim();
  } catch {
    return undefined;
  }
}

function bootId(): string | undefined {
  return readOptional('/proc/sys/kernel/random/boot_id');
}

/** Start time of a process in clock ticks since boot (Linux), or undefined. */
function processStartTime(pid: number): string | undefined {
  const stat = readOptional(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // Fields after the command name (which may hold spaces and parentheses): state is field 3,
  // starttime field 22.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[19];
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Who a process is: enough to tell later, on this host, whether it still runs. */
export type ProcessIdentity = Pick<LockInfo, 'pid' | 'host' | 'boot_id' | 'start_time'>;

/** This process's identity (for locks and for markers in temporary directories). */
export function selfIdentity(): ProcessIdentity {
  const start = processStartTime(process.pid);
  const boot = bootId();
  return {
    pid: process.pid,
    host: hostname(),
    ...(boot === undefined ? {} : { boot_id: boot }),
    ...(start === undefined ? {} : { start_time: start }),
  };
}

/**
 * Why the process `info` describes is known to be gone, or undefined when it may still run
 * (or runs on another host, where it cannot be checked).
 */
export function staleReason(info: ProcessIdentity): string | undefined {
  if (info.host !== hostname()) return undefined;
  const boot = bootId();
  if (info.boot_id !== undefined && boot !== undefined && info.boot_id !== boot)
    return 'the machine has restarted since';
  if (!pidAlive(info.pid)) return `process ${info.pid} no longer exists`;
  const started = processStartTime(info.pid);
  if (info.start_time !== undefined && started !== undefined && started !== info.start_time)
    return `process ${info.pid} is a different program now (pid reused)`;
  return undefined;
}

function parseLock(text: string | undefined): LockInfo | undefined {
  if (text === undefined || text === '') return undefined;
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (
      v.format === LOCK_FORMAT &&
      Number.isSafeInteger(v.pid) &&
      typeof v.host === 'string' &&
      typeof v.token === 'string'
    )
      return v as LockInfo;
  } catch {}
  return undefined;
}

function describe(info: LockInfo): string {
  return `pid ${info.pid} on host ${info.host} ("${info.command}", since ${info.since})`;
}

/** Locks this process holds, by absolute path, with how many handles share each. */
const held = new Map<string, { info: LockInfo; count: number }>();

/**
 * A held lock. Taking the same lock again in the same process shares it (a command locks
 * before its checks, the trainer it calls locks again); the file is removed when the last
 * handle is released, or at exit, and only if it is still this process's lock.
 */
export class DirLock {
  private released = false;
  private readonly onExit = () => this.release();

  constructor(
    readonly file: string,
    readonly info: LockInfo,
    private readonly shared: { count: number },
  ) {
    process.on('exit', this.onExit);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    if (--this.shared.count > 0) return;
    held.delete(path.resolve(this.file));
    if (parseLock(readLockText(this.file))?.token === this.info.token) {
      try {
        unlinkSync(this.file);
      } catch {}
    }
  }
}

export interface AcquireOptions {
  /** Names the holder in messages, e.g. "glam train". */
  command: string;
  /** Names the locked thing in messages (default: the lock file's directory). */
  what: string;
  /** Told when a stale lock is taken over. */
  onStale?: (message: string) => void;
}

function create(file: string, info: LockInfo): boolean {
  let fd: number;
  try {
    fd = openSync(
      file,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
      0o644,
    );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new Error(`cannot create lock ${file}: ${(err as Error).message}`);
  }
  try {
    const bytes = Buffer.from(`${JSON.stringify(info)}\n`);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Take the lock file `file` or throw an error naming the holder. A stale lock (its holder gone,
 * see staleReason) is moved aside, checked to be the one judged stale, and replaced.
 */
export function acquireLock(file: string, opts: AcquireOptions): DirLock {
  const mine = held.get(path.resolve(file));
  if (mine !== undefined && parseLock(readLockText(file))?.token === mine.info.token) {
    mine.count++;
    return new DirLock(file, mine.info, mine);
  }
  const info: LockInfo = {
    format: LOCK_FORMAT,
    ...selfIdentity(),
    command: opts.command,
    since: new Date().toISOString(),
    token: randomBytes(8).toString('hex'),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (create(file, info)) {
      const shared = { info, count: 1 };
      held.set(path.resolve(file), shared);
      return new DirLock(file, info, shared);
    }
    const text = readLockText(file);
    const holder = parseLock(text);
    let reason: string | undefined;
    if (holder !== undefined) reason = staleReason(holder);
    else {
      // Only an empty regular file is ours (a holder killed between creating and writing it),
      // once it is not new; anything else there is not a glam lock and is left alone.
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(file);
      } catch {
        continue; // gone meanwhile: try again
      }
      if (!st.isFile() || text === undefined || text !== '')
        throw new Error(
          `${file} is not a glam lock file (${fileKind(st)}); remove it if no glam process is using ${opts.what}`,
        );
      if (Date.now() - st.mtimeMs < 10_000)
        throw new Error(`${opts.what} is being locked by another process (${file} is new); try again`);
      reason = 'an empty lock file left by a crash';
    }
    if (reason === undefined) {
      throw new Error(
        `${opts.what} is in use by ${describe(holder!)}; wait for it to finish` +
          (holder!.host === hostname()
            ? ''
            : `, or if that process is gone, remove ${file} (a lock from another host cannot be checked)`),
      );
    }
    // Stale: move it aside (so two processes cannot both remove it), and make sure what moved
    // is the lock judged stale, not a fresh one taken meanwhile.
    const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      renameSync(file, aside);
    } catch {
      continue;
    }
    if (readLockText(aside) !== text) {
      try {
        linkSync(aside, file); // put the fresh lock back unless yet another was taken
      } catch {}
      unlinkSync(aside);
      continue;
    }
    unlinkSync(aside);
    opts.onStale?.(
      `taking over a stale lock on ${opts.what}${holder === undefined ? '' : ` from ${describe(holder)}`}: ${reason}`,
    );
  }
  throw new Error(`could not lock ${opts.what}: ${file} keeps changing; is another glam process starting?`);
}
