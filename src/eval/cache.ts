/**
 * Per-example result cache, so an interrupted `glam eval` resumes where it stopped.
 * One JSON Lines file per model and task; a line is {key, value}, the key a hash of
 * everything the result depends on (the exact prompt and candidates, or the
 * generation settings). Lines are appended (O_APPEND, never through a symlink); a
 * line cut short by a crash is ignored on reading.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import * as path from 'node:path';

export function hashKey(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

export class ResultCache {
  private readonly entries = new Map<string, unknown>();
  private fd: number | undefined;
  readonly file: string;

  constructor(dir: string, modelId: string, task: string) {
    const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 80);
    this.file = path.join(dir, safe(modelId), `${safe(task)}.jsonl`);
    if (existsSync(this.file)) {
      if (lstatSync(this.file).isSymbolicLink())
        throw new Error(`${this.file}: the cache file is a symbolic link; not using it`);
      for (const line of readFileSync(this.file, 'utf8').split('\n')) {
        try {
          const rec = JSON.parse(line) as { key?: unknown; value?: unknown };
          if (typeof rec.key === 'string' && rec.value !== undefined) this.entries.set(rec.key, rec.value);
        } catch {}
      }
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): unknown {
    return this.entries.get(key);
  }

  put(key: string, value: unknown): void {
    this.entries.set(key, value);
    if (this.fd === undefined) {
      mkdirSync(path.dirname(this.file), { recursive: true });
      const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;
      this.fd = openSync(this.file, flags, 0o644);
      // A line cut short by a crash is closed off so the next one starts clean.
      if (existsSync(this.file) && !/(^|\n)$/.test(readFileSync(this.file, 'utf8').slice(-1)))
        writeSync(this.fd, '\n');
    }
    writeSync(this.fd, `${JSON.stringify({ key, value })}\n`);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
