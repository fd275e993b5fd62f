/** The shape of a data format: how to recognise a file of it and turn it into examples. */
import type { Example } from '../examples.js';
import { type DataFile, EvalDataError, Fields, recordsOf, recordWhere } from '../io.js';

export interface LoadContext {
  /** The task the examples are for (some formats serve several, e.g. ARC-e and ARC-c). */
  task: string;
  /** Generic multiple-choice queries get "\nAnswer:" appended when the task's prompt asks a question. */
  answerCue?: boolean;
}

export interface Format {
  id: string;
  /** What the format is, for `glam eval --list` and for the error on an unrecognised file. */
  description: string;
  /** True when the file is in this format (a cheap look at its first records). */
  detect(file: DataFile): boolean;
  load(file: DataFile, ctx: LoadContext): Example[];
  /** One example group per file (RACE's per-article files): a directory of them is one data set. */
  perFile?: boolean;
}

/** The first record of a JSON Lines / JSON array file, when it is an object. */
export function firstRecord(file: DataFile): Record<string, unknown> | undefined {
  const recs = recordsOf(file);
  const r = recs?.[0];
  return typeof r === 'object' && r !== null && !Array.isArray(r)
    ? (r as Record<string, unknown>)
    : undefined;
}

/** True when the first record has every one of `keys`. */
export function hasKeys(file: DataFile, ...keys: string[]): boolean {
  const r = firstRecord(file);
  return r !== undefined && keys.every((k) => r[k] !== undefined);
}

/** Map every record of a JSON Lines / JSON array file through `fn` with checked field access. */
export function mapRecords<T>(file: DataFile, fn: (f: Fields, i: number) => T | T[] | undefined): T[] {
  const recs = recordsOf(file);
  if (recs === undefined) throw new EvalDataError(`${file.path}: expected JSON Lines or a JSON array`);
  const out: T[] = [];
  recs.forEach((r, i) => {
    const v = fn(Fields.of(r, recordWhere(file, i)), i);
    if (Array.isArray(v)) out.push(...v);
    else if (v !== undefined) out.push(v);
  });
  return out;
}

/** A gold index in [0, n), with a message naming the record otherwise. */
export function checkGold(gold: number, n: number, where: string): number {
  if (!(Number.isInteger(gold) && gold >= 0 && gold < n)) {
    throw new EvalDataError(`${where}: gold answer ${gold} is not one of the ${n} candidates`);
  }
  return gold;
}

/** Letter or number answer keys ("A".."E", "1".."5") to a 0-based index among `labels`. */
export function answerIndex(key: string, labels: string[], where: string): number {
  const i = labels.indexOf(key.trim());
  if (i < 0)
    throw new EvalDataError(`${where}: answer key '${key}' is not among the labels ${labels.join(', ')}`);
  return i;
}

/** " " + text, the delimiter between a prompt and its answer. */
export const sp = (s: string) => ` ${s}`;
