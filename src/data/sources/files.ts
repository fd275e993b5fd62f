/**
 * User corpora from a data config: plain text, JSON Lines or HTML files, or directories of
 * them. Files are streamed line by line from their bytes, so a bad line is reported with
 * its file and line number and no file has to fit in memory (except one HTML page).
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileKind } from '../../util/files.js';
import type { FileSourceSpec } from '../config.js';
import type { DocumentSource, RawDocument } from '../document.js';
import { DataError, where } from '../errors.js';
import { decodeAs, normalizeNewlines } from '../text.js';
import { htmlToText } from './html.js';

export interface Line {
  bytes: Buffer;
  /** 1-based */
  lineNo: number;
}

/** Lines of a file as raw bytes (without the newline), read in 1 MiB chunks. */
export function* readLines(file: string, chunkSize = 1 << 20): Generator<Line> {
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.allocUnsafe(chunkSize);
    let carry: Buffer = Buffer.alloc(0);
    let lineNo = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, chunkSize, null);
      if (n === 0) break;
      const buf: Buffer =
        carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let start = 0;
      for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
        yield { bytes: buf.subarray(start, nl), lineNo: ++lineNo };
        start = nl + 1;
      }
      carry = Buffer.from(buf.subarray(start)); // copy: `chunk` is reused
    }
    if (carry.length > 0) yield { bytes: carry, lineNo: ++lineNo };
  } finally {
    closeSync(fd);
  }
}

/** The files of a source: the file itself, or a directory's matching files, recursively, sorted. */
export function sourceFiles(spec: FileSourceSpec): string[] {
  const st = statSync(spec.path);
  if (st.isFile()) return [spec.path];
  if (!st.isDirectory()) throw new DataError(`${spec.path}: ${fileKind(st)}, not a file or directory`);
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && spec.extensions.some((x) => e.name.endsWith(x))) out.push(p);
    }
  };
  walk(spec.path);
  if (out.length === 0) {
    throw new DataError(`${spec.path}: directory holds no files ending in ${spec.extensions.join(' or ')}`);
  }
  return out;
}

function* jsonlDocs(file: string, spec: FileSourceSpec): Generator<RawDocument> {
  for (const { bytes, lineNo } of readLines(file)) {
    const line = decodeAs(bytes, spec.encoding, file, lineNo).trim();
    if (line === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      throw new DataError(`${where(file, lineNo)}: invalid JSON: ${(err as Error).message}`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      throw new DataError(`${where(file, lineNo)}: expected a JSON object per line, got ${typeof obj}`);
    }
    const text = (obj as Record<string, unknown>)[spec.field];
    if (typeof text !== 'string') {
      throw new DataError(
        `${where(file, lineNo)}: field ${JSON.stringify(spec.field)} is ${text === undefined ? 'missing' : `not a string (${typeof text})`}; set "field" on the source to the key that holds the text`,
      );
    }
    yield { text: normalizeNewlines(text), category: spec.category, source: where(file, lineNo) };
  }
}

function* textDocs(file: string, spec: FileSourceSpec, maxChars: number): Generator<RawDocument> {
  let doc: string[] = [];
  let size = 0;
  let first = 1;
  const emit = (): RawDocument => {
    const text = doc.join('\n');
    doc = [];
    size = 0;
    return { text, category: spec.category, source: where(file, first) };
  };
  for (const { bytes, lineNo } of readLines(file)) {
    const line = decodeAs(bytes, spec.encoding, file, lineNo).replace(/\r$/, '');
    const blank = line.trim() === '';
    if (spec.split === 'line') {
      if (!blank) yield { text: line, category: spec.category, source: where(file, lineNo) };
      continue;
    }
    // a paragraph ends a document in paragraph mode; in file mode only an oversized one does,
    // so a huge file streams through as document-sized pieces
    if (blank && size > 0 && (spec.split === 'paragraph' || size >= maxChars)) {
      yield emit();
      continue;
    }
    if (doc.length === 0) {
      if (blank) continue;
      first = lineNo;
    }
    doc.push(line);
    size += line.length + 1;
    if (size >= 4 * maxChars) yield emit(); // no blank line for a long while
  }
  if (size > 0) yield emit();
}

function htmlDoc(file: string, spec: FileSourceSpec): RawDocument {
  const text = htmlToText(decodeAs(readFileSync(file), spec.encoding, file));
  return { text, category: spec.category, source: file };
}

export function fileSource(spec: FileSourceSpec, maxDocChars: number): DocumentSource {
  const files = sourceFiles(spec);
  let size = 0;
  for (const f of files) size += statSync(f).size;
  return {
    name: path.basename(spec.path),
    categories: [spec.category],
    sizeHint: size,
    async *read(): AsyncIterable<RawDocument> {
      for (const f of files) {
        if (spec.format === 'jsonl') yield* jsonlDocs(f, spec);
        else if (spec.format === 'html') yield htmlDoc(f, spec);
        else yield* textDocs(f, spec, maxDocChars);
      }
    },
  };
}
