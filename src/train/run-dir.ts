/**
 * What a training run directory holds, and the only ways glam changes it.
 *
 *   RUN/metrics.jsonl        one JSON record per step (appended; never through a symbolic link)
 *   RUN/checkpoints/step-N/  complete checkpoints (see checkpoints.ts)
 *   RUN/.glam-lock           held while a trainer writes RUN (see util/lock.ts)
 *   RUN/curves.svg           written by `glam plot`
 *
 * glam deletes or rewrites only what it can prove it wrote: checkpoint directories holding
 * nothing but checkpoint files, its own temporary directories, and a metrics.jsonl whose
 * every line is a step record. Anything else under RUN/checkpoints/, or a metrics.jsonl that
 * is a symbolic link or another program's file, stops a fresh run with a message saying
 * what was found; other files in RUN are never touched.
 */
import { closeSync, readdirSync, rmSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { atomicWriteFileSync, openAppendNoFollow } from '../util/atomic.js';
import { fileKind, lstatOrUndefined, readLines } from '../util/files.js';
import { acquireLock, type DirLock } from '../util/lock.js';
import { CHECKPOINT_TEMP, checkpointsDir, isOwnCheckpoint, STEP_DIR } from './checkpoints.js';

export const METRICS_FILE = 'metrics.jsonl';
export const LOCK_FILE = '.glam-lock';

/** Take the run's lock, or throw naming the process that holds it (stale locks are taken over). */
export function lockRun(outDir: string, command: string, onStale?: (message: string) => void): DirLock {
  return acquireLock(path.join(outDir, LOCK_FILE), {
    command,
    what: `run directory ${outDir}`,
    ...(onStale === undefined ? {} : { onStale }),
  });
}

interface MetricsScan {
  /** Step records (lines with a numeric loss). */
  records: number;
  /** Why the file cannot be proven ours, if so. */
  foreign?: string;
}

/** Read metrics.jsonl and decide whether every line is one of ours (a last line cut short by a crash is allowed). */
export function scanMetrics(file: string): MetricsScan | undefined {
  const st = lstatOrUndefined(file);
  if (st === undefined) return undefined;
  if (!st.isFile()) return { records: 0, foreign: `${file} is ${fileKind(st)}` };
  let records = 0;
  try {
    for (const { line, number, partial } of readLines(file)) {
      if (line.trim() === '') continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        if (partial) break;
        return { records, foreign: `${file}:${number} is not a training metrics record` };
      }
      const r = rec as { step?: unknown; loss?: unknown } | null;
      if (typeof r !== 'object' || r === null || !Number.isSafeInteger(r.step))
        return { records, foreign: `${file}:${number} is not a training metrics record` };
      if (typeof r.loss === 'number') records++;
    }
  } catch (err) {
    return { records, foreign: (err as Error).message };
  }
  return { records };
}

export interface RunContents {
  /** Steps of our complete checkpoints, ascending, and their directories. */
  steps: number[];
  stepDirs: string[];
  /** Our temporary checkpoint directories (of writers that died). */
  temps: string[];
  /** Entries under checkpoints/ (relative to the run) that glam did not write. */
  foreign: string[];
  metrics: MetricsScan | undefined;
}

/** Classify a run directory's checkpoints/ and metrics.jsonl. */
export function inspectRun(outDir: string): RunContents {
  const root = checkpointsDir(outDir);
  const out: RunContents = {
    steps: [],
    stepDirs: [],
    temps: [],
    foreign: [],
    metrics: scanMetrics(path.join(outDir, METRICS_FILE)),
  };
  const st = lstatOrUndefined(root);
  if (st === undefined) return out;
  if (!st.isDirectory()) {
    out.foreign.push(`checkpoints (${fileKind(st)})`);
    return out;
  }
  for (const e of readdirSync(root)) {
    const dir = path.join(root, e);
    const step = STEP_DIR.exec(e);
    if (step !== null && isOwnCheckpoint(dir)) {
      out.steps.push(Number(step[1]));
      out.stepDirs.push(dir);
    } else if (CHECKPOINT_TEMP.test(e) && isOwnCheckpoint(dir, { complete: false })) out.temps.push(dir);
    else out.foreign.push(path.join('checkpoints', e));
  }
  out.steps.sort((a, b) => a - b);
  return out;
}

function listed(names: string[], max = 4): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/** Throw if a fresh run would have to delete or rewrite something glam did not write. */
function refuseForeign(outDir: string, c: RunContents): void {
  if (c.foreign.length > 0) {
    throw new Error(
      `${outDir} holds files glam train did not write (${listed(c.foreign)}); a fresh run deletes only ` +
        'checkpoints it made. Move those away or choose another --out',
    );
  }
  if (c.metrics?.foreign !== undefined) {
    throw new Error(
      `${c.metrics.foreign}: not a metrics file glam wrote, so a fresh run will not replace it. ` +
        'Move it away or choose another --out',
    );
  }
}

/**
 * Check that a fresh (not resumed) run may start in `outDir`: nothing there that glam did not
 * write, and, unless `overwrite`, no progress of an earlier run (checkpoints past step 0 or
 * metrics records). The message says what was found and which flag proceeds.
 */
export function checkFreshRun(outDir: string, overwrite: boolean): void {
  const c = inspectRun(outDir);
  refuseForeign(outDir, c);
  if (overwrite) return;
  const progress = c.steps.filter((s) => s > 0);
  const records = c.metrics?.records ?? 0;
  if (progress.length > 0 || records > 0) {
    const what =
      progress.length > 0
        ? `checkpoints (latest step ${progress[progress.length - 1]})`
        : `the metrics of an earlier run (${records} steps)`;
    throw new Error(
      `${outDir} already holds ${what}; pass --resume to continue it, --overwrite to ` +
        'start afresh (deleting them), or another --out',
    );
  }
}

/**
 * Empty a run directory for a fresh start: remove our checkpoints and temporaries and our
 * metrics.jsonl, after checking again that nothing else is there.
 */
export function clearForFreshRun(outDir: string): void {
  const c = inspectRun(outDir);
  refuseForeign(outDir, c);
  for (const t of [...c.stepDirs, ...c.temps]) rmSync(t, { recursive: true, force: true });
  if (c.metrics !== undefined) rmSync(path.join(outDir, METRICS_FILE), { force: true });
}

/** Keep the metrics records up to `step` (a resumed run writes the rest again), rewritten atomically. */
export function truncateMetrics(file: string, step: number): void {
  const scan = scanMetrics(file);
  if (scan === undefined) return;
  if (scan.foreign !== undefined)
    throw new Error(`${scan.foreign}: not a metrics file glam wrote; move it away to resume this run`);
  const kept: string[] = [];
  for (const { line, partial } of readLines(file)) {
    if (line.trim() === '' || partial) continue;
    if ((JSON.parse(line) as { step: number }).step <= step) kept.push(line);
  }
  atomicWriteFileSync(file, kept.length > 0 ? `${kept.join('\n')}\n` : '');
}

/** Append one record to metrics.jsonl (created if needed; never through a symbolic link). */
export function appendMetrics(file: string, record: object): void {
  const fd = openAppendNoFollow(file);
  try {
    const bytes = Buffer.from(`${JSON.stringify(record)}\n`);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off);
  } finally {
    closeSync(fd);
  }
}
