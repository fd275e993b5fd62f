/**
 * Reading evaluation files as people have them: JSON, JSON Lines, CSV/TSV and
 * plain text, optionally gzip- or bzip2-compressed (recognised by their magic
 * bytes, not their names). Each file is parsed once into a `DataFile` that the
 * format detectors look at.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import Bunzip from 'seek-bzip';

/** A user's data file that cannot be read or parsed; the message names the file. */
export class EvalDataError extends Error {
  override name = 'EvalDataError';
}

export interface DataFile {
  path: string;
  text: string;
  /** The whole file as one JSON value, when it is one. */
  json?: unknown;
  /** One JSON value per non-empty line, when every such line is one (JSON Lines). */
  jsonl?: unknown[];
  /** Line numbers (1-based) of the jsonl values, for messages. */
  jsonlLines?: number[];
  /** Rows of a comma- or tab-separated file with a header, when the text parses as one. */
  table?: { header: string[]; rows: string[][] };
}

/** The bytes of a file, decompressed when they start with a gzip or bzip2 signature. */
export function readMaybeCompressed(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new EvalDataError(code === 'ENOENT' ? `${file}: file not found` : `${file}: cannot read (${code})`);
  }
  try {
    if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) return gunzipSync(raw);
    if (raw.length >= 3 && raw.toString('latin1', 0, 3) === 'BZh') return Bunzip.decode(raw);
  } catch (err) {
    throw new EvalDataError(`${file}: corrupt compressed file (${(err as Error).message})`);
  }
  return raw;
}

/** Read and parse one data file (the parse that fits: JSON, JSON Lines, a table, or only text). */
export function readDataFile(file: string): DataFile {
  const text = readMaybeCompressed(file)
    .toString('utf8')
    .replace(/^\uFEFF/, '');
  const out: DataFile = { path: file, text };
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      out.json = JSON.parse(text);
    } catch {
      const lines = parseJsonLines(text);
      if (lines !== undefined) {
        out.jsonl = lines.values;
        out.jsonlLines = lines.lines;
      }
    }
    if (out.json !== undefined && !Array.isArray(out.json)) {
      // A file of exactly one JSON object per line whose first line is the whole file.
      out.jsonl = [out.json];
      out.jsonlLines = [1];
    }
  } else {
    const table = parseTable(text);
    if (table !== undefined) out.table = table;
  }
  return out;
}

function parseJsonLines(text: string): { values: unknown[]; lines: number[] } | undefined {
  const values: unknown[] = [];
  const lines: number[] = [];
  const all = text.split('\n');
  for (let i = 0; i < all.length; i++) {
    const line = all[i]!.trim();
    if (line === '') continue;
    try {
      values.push(JSON.parse(line));
      lines.push(i + 1);
    } catch {
      return undefined;
    }
  }
  return values.length > 0 ? { values, lines } : undefined;
}

/**
 * RFC 4180 CSV (or TSV when the header line has tabs and no commas): quoted fields
 * may hold separators, doubled quotes and newlines. Undefined unless the text has a
 * header of at least two columns and every row has as many fields as the header.
 */
export function parseTable(text: string): { header: string[]; rows: string[][] } | undefined {
  const firstLine = text.slice(0, text.indexOf('\n') >= 0 ? text.indexOf('\n') : text.length);
  const sep = firstLine.includes('\t') && !firstLine.includes(',') ? '\t' : ',';
  const records: string[][] = [];
  let field = '';
  let row: string[] = [];
  let quoted = false;
  let i = 0;
  const endRow = () => {
    row.push(field);
    field = '';
    if (!(row.length === 1 && row[0] === '')) records.push(row);
    row = [];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') quoted = true;
    else if (c === sep) {
      row.push(field);
      field = '';
    } else if (c === '\n') endRow();
    else if (c !== '\r') field += c;
    i++;
  }
  if (quoted) return undefined;
  if (field !== '' || row.length > 0) endRow();
  const [header, ...rows] = records;
  if (header === undefined || header.length < 2 || rows.some((r) => r.length !== header.length))
    return undefined;
  return { header: header.map((h) => h.trim()), rows };
}

/** Files under a directory, recursively, sorted; hidden files and documentation left out. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const p = path.join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && !/^(readme|license|licence|copying)(\.|$)/i.test(name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Accessors that check a record's fields and name the record and field when wrong. */
export class Fields {
  constructor(
    readonly rec: Record<string, unknown>,
    readonly where: string,
  ) {}

  static of(value: unknown, where: string): Fields {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new EvalDataError(`${where}: expected a JSON object`);
    }
    return new Fields(value as Record<string, unknown>, where);
  }

  has(key: string): boolean {
    return this.rec[key] !== undefined && this.rec[key] !== null;
  }

  private fail(key: string, what: string): never {
    const v = this.rec[key];
    const got = v === undefined ? 'it is missing' : `got ${JSON.stringify(v).slice(0, 60)}`;
    throw new EvalDataError(`${this.where}: field '${key}' must be ${what}; ${got}`);
  }

  str(key: string): string {
    const v = this.rec[key];
    return typeof v === 'string' ? v : this.fail(key, 'a string');
  }

  /** A string, or a number written as its decimal text. */
  text(key: string): string {
    const v = this.rec[key];
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    return typeof v === 'string' ? v : this.fail(key, 'a string');
  }

  int(key: string): number {
    const v = this.rec[key];
    if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v);
    return typeof v === 'number' && Number.isInteger(v) ? v : this.fail(key, 'an integer');
  }

  bool(key: string): boolean {
    const v = this.rec[key];
    if (v === 0 || v === 1) return v === 1;
    if (v === 'true' || v === 'false') return v === 'true';
    return typeof v === 'boolean' ? v : this.fail(key, 'true or false');
  }

  strings(key: string): string[] {
    const v = this.rec[key];
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) this.fail(key, 'an array of strings');
    return v as string[];
  }

  array(key: string): unknown[] {
    const v = this.rec[key];
    return Array.isArray(v) ? v : this.fail(key, 'an array');
  }

  /** An array of objects, each named `where.key[i]` in messages. */
  objects(key: string): Fields[] {
    return this.array(key).map((v, i) => Fields.of(v, `${this.where}.${key}[${i}]`));
  }

  obj(key: string): Fields {
    const v = this.rec[key];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, 'an object');
    return new Fields(v as Record<string, unknown>, `${this.where}.${key}`);
  }
}

/** The records of a JSON Lines file or of a file holding one JSON array. */
export function recordsOf(file: DataFile): unknown[] | undefined {
  if (Array.isArray(file.json)) return file.json;
  return file.jsonl;
}

/** Where record i of a file is, for messages: `file:line` for JSON Lines, `file[i]` for an array. */
export function recordWhere(file: DataFile, i: number): string {
  const line = Array.isArray(file.json) ? undefined : file.jsonlLines?.[i];
  return line !== undefined ? `${file.path}:${line}` : `${file.path}[${i}]`;
}
