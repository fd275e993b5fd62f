/**
 * Text helpers shared by the readers: strict and lenient decoding, unwrapping of
 * hard-wrapped prose, and chunking of long texts into document-sized pieces.
 */
import { isUtf8 } from 'node:buffer';
import { DataError, where } from './errors.js';

const utf8 = new TextDecoder('utf-8');
const cp1252 = new TextDecoder('windows-1252');

/** Byte offset of the first invalid UTF-8 sequence, or -1 when the bytes are valid UTF-8. */
export function findInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else return i;
    if (i + need >= n) return i;
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** 1-based line number of a byte offset. */
export function lineOfOffset(b: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < b.length; i++) if (b[i] === 0x0a) line++;
  return line;
}

/**
 * Decode bytes that must be UTF-8 (user corpora): a clear error naming the file, line and
 * byte offset otherwise. `firstLine` is the line number of the first byte.
 */
export function decodeUtf8Strict(b: Uint8Array, file: string, firstLine = 1): string {
  if (isUtf8(b)) return utf8.decode(b);
  const at = findInvalidUtf8(b);
  const line = firstLine + lineOfOffset(b, at) - 1;
  throw new DataError(
    `${where(file, line)}: not valid UTF-8 (byte 0x${b[at]?.toString(16).padStart(2, '0')} at offset ${at}); ` +
      'convert the file to UTF-8 or set "encoding" on its source (e.g. "latin1")',
  );
}

/** Decode with a named encoding (any WHATWG label: utf-8, latin1, windows-1252, ...). */
export function decodeAs(b: Uint8Array, encoding: string, file: string, firstLine = 1): string {
  const label = encoding.toLowerCase();
  if (label === 'utf-8' || label === 'utf8') return decodeUtf8Strict(b, file, firstLine);
  return new TextDecoder(label).decode(b);
}

/** Decode bundled texts: UTF-8 when valid, else Windows-1252 (old Gutenberg files are Latin-1). */
export function decodeLenient(b: Uint8Array): string {
  return isUtf8(b) ? utf8.decode(b) : cp1252.decode(b);
}

/** Normalise line endings and drop a byte-order mark. */
export function normalizeNewlines(s: string): string {
  if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
  return s.includes('\r') ? s.replace(/\r\n?/g, '\n') : s;
}

/** Split text into paragraphs at blank lines, dropping empty ones. */
export function paragraphs(text: string): string[] {
  return text
    .split(/\n[ \t]*\n+/)
    .map((p) => p.replace(/^\n+|\s+$/g, ''))
    .filter((p) => p.trim().length > 0);
}

/**
 * Join the lines of a hard-wrapped prose paragraph with spaces. Verse, drama and lists keep
 * their line breaks: a paragraph is unwrapped only when every line but the last is long.
 */
export function unwrapParagraph(p: string, minLine = 50): string {
  const lines = p.split('\n');
  if (lines.length < 2) return p.trim();
  for (let i = 0; i < lines.length - 1; i++) if (lines[i]!.trim().length < minLine) return p;
  return lines.map((l) => l.trim()).join(' ');
}

/**
 * Cut a long text into pieces of at most about `maxChars` at paragraph boundaries, then at
 * sentence ends, then at spaces; very long documents (whole books) become several documents
 * so that the validation split and the mixture see document-sized units.
 */
export function chunkText(text: string, maxChars: number): string[] {
  if (text.length <= maxChars) return [text];
  const out: string[] = [];
  let cur = '';
  const flush = () => {
    if (cur.trim().length > 0) out.push(cur);
    cur = '';
  };
  for (const para of text.split(/(?<=\n\n)/)) {
    if (cur.length + para.length <= maxChars) {
      cur += para;
      continue;
    }
    flush();
    if (para.length <= maxChars) {
      cur = para;
      continue;
    }
    for (const piece of splitLong(para, maxChars)) {
      if (cur.length + piece.length > maxChars) flush();
      cur += piece;
    }
  }
  flush();
  return out;
}

function splitLong(s: string, maxChars: number): string[] {
  const sentences = s.split(/(?<=[.!?]["')\]]?\s)/);
  const out: string[] = [];
  for (const sent of sentences) {
    if (sent.length <= maxChars) {
      out.push(sent);
      continue;
    }
    let i = 0;
    while (i < sent.length) {
      let end = Math.min(sent.length, i + maxChars);
      if (end < sent.length) {
        const space = sent.lastIndexOf(' ', end);
        if (space > i) end = space + 1;
        // never split a surrogate pair
        else if (isHighSurrogate(sent.charCodeAt(end - 1))) end--;
      }
      out.push(sent.slice(i, end));
      i = end;
    }
  }
  return out;
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

/** Collapse runs of blank lines and trailing spaces; trim the ends. */
export function tidy(text: string): string {
  return text
    .replace(/[ \t]+$/gm, '')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
