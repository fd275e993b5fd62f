/**
 * Finding and loading a task's examples from `--data PATH`: a file, a directory of
 * files, or a directory with one folder per task (named by the task id or a
 * usual name, e.g. naturalquestions/ for nq). The format is recognised from the
 * content; a directory's validation file is preferred over test and train files.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { Example } from './examples.js';
import type { Format } from './formats/format.js';
import { type DataFile, EvalDataError, listFiles, readDataFile } from './io.js';
import type { TaskSpec } from './tasks.js';

export interface TaskData {
  examples: Example[];
  format: string;
  /** The file(s) read: one path, or a directory of per-article files. */
  source: string;
}

/** The task's folder under a data directory, when it has one. */
export function taskDir(task: TaskSpec, dir: string): string | undefined {
  for (const name of [task.id, ...task.dirs]) {
    const p = path.join(dir, name);
    if (existsSync(p) && statSync(p).isDirectory()) return p;
    // Case-insensitive match of a single folder name.
    if (!name.includes('/')) {
      try {
        const hit = listDirNames(dir).find((n) => n.toLowerCase() === name.toLowerCase());
        if (hit !== undefined) return path.join(dir, hit);
      } catch {}
    }
  }
  return undefined;
}

function listDirNames(dir: string): string[] {
  return readdirSync(dir).filter((n) => statSync(path.join(dir, n)).isDirectory());
}

/** 0 validation/dev, 1 test, 2 unnamed, 3 train: the order in which a directory's files are preferred. */
export function splitRank(file: string): number {
  const name = path.basename(file).toLowerCase();
  if (/(^|[^a-z])(val|valid|validation|dev)([^a-z]|$)/.test(name)) return 0;
  if (/(^|[^a-z])test([^a-z]|$)/.test(name)) return 1;
  if (/(^|[^a-z])train([^a-z]|$)/.test(name)) return 3;
  return 2;
}

function detect(task: TaskSpec, file: DataFile): Format | undefined {
  return task.formats.find((f) => f.detect(file));
}

function unrecognised(task: TaskSpec, where: string): EvalDataError {
  const list = task.formats.map((f) => `  - ${f.description}`).join('\n');
  return new EvalDataError(`${where}: not a format ${task.id} accepts. ${task.id} accepts:\n${list}`);
}

function loadFile(task: TaskSpec, file: DataFile, format: Format): Example[] {
  return format.load(file, { task: task.id, answerCue: task.answerCue });
}

/** Load a task's examples from a file or directory. */
export function loadTaskData(task: TaskSpec, dataPath: string): TaskData {
  if (!existsSync(dataPath)) throw new EvalDataError(`${dataPath}: no such file or directory`);
  if (!statSync(dataPath).isDirectory()) {
    const file = readDataFile(dataPath);
    const format = detect(task, file);
    if (format === undefined) throw unrecognised(task, dataPath);
    const examples = loadFile(task, file, format);
    return checked(task, { examples, format: format.id, source: dataPath });
  }
  const sub = taskDir(task, dataPath);
  if (sub !== undefined) return loadTaskData(task, sub);
  const files = listFiles(dataPath).filter((f) => !/\.(lst|md|py|sh)$/i.test(f));
  if (files.length === 0) throw new EvalDataError(`${dataPath}: no data files (and no ${task.id}/ folder)`);
  const found: Array<{ file: DataFile; format: Format }> = [];
  for (const f of files) {
    let file: DataFile;
    try {
      file = readDataFile(f);
    } catch {
      continue;
    }
    const format = detect(task, file);
    if (format !== undefined) found.push({ file, format });
  }
  if (found.length === 0) throw unrecognised(task, `${dataPath} (${files.length} file(s))`);
  const perFile = found.filter((x) => x.format.perFile === true);
  if (perFile.length > 0) {
    // A directory of per-article files is one data set (train files left out unless that is all there is).
    const evalFiles = perFile.filter((x) => splitRank(path.relative(dataPath, x.file.path)) !== 3);
    const use = evalFiles.length > 0 ? evalFiles : perFile;
    const examples = use.flatMap((x) => loadFile(task, x.file, x.format));
    return checked(task, { examples, format: use[0]!.format.id, source: dataPath });
  }
  found.sort(
    (a, b) =>
      splitRank(a.file.path) - splitRank(b.file.path) ||
      task.formats.indexOf(a.format) - task.formats.indexOf(b.format) ||
      a.file.path.localeCompare(b.file.path),
  );
  const best = found[0]!;
  return checked(task, {
    examples: loadFile(task, best.file, best.format),
    format: best.format.id,
    source: best.file.path,
  });
}

function checked(task: TaskSpec, data: TaskData): TaskData {
  if (data.examples.length === 0) throw new EvalDataError(`${data.source}: no ${task.id} examples in it`);
  return data;
}
