/**
 * A small, lenient RFC 822 / MIME reader for corpus mail: header unfolding, RFC 2047
 * encoded words, nested multipart bodies, quoted-printable and base64, and charsets through
 * TextDecoder. It extracts the readable text only (attachments are skipped), which is all
 * the pipeline needs, and runs an order of magnitude faster than a full mail parser.
 */
import { decodeLenient } from '../text.js';

export interface MimeMessage {
  /** Lower-cased header names; the first occurrence of each, unfolded and decoded. */
  headers: Map<string, string>;
  /** text/plain parts, decoded, in order. */
  plain: string[];
  /** text/html parts, decoded, in order. */
  html: string[];
}

const MAX_DEPTH = 16;

/** Parse raw mail bytes. Never throws on malformed input: what cannot be read is skipped. */
export function parseMime(raw: Uint8Array): MimeMessage {
  // latin1 maps bytes 1:1 to chars, so slicing and searching work on bytes
  const s = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
  const msg: MimeMessage = { headers: new Map(), plain: [], html: [] };
  const { headers, body } = splitHeaders(s);
  for (const [k, v] of headers) msg.headers.set(k, decodeHeader(v));
  walk(headers, body, msg, 0);
  return msg;
}

function splitHeaders(s: string): { headers: Map<string, string>; body: string } {
  const m = /\r?\n\r?\n/.exec(s);
  const head = m ? s.slice(0, m.index) : s;
  const body = m ? s.slice(m.index + m[0].length) : '';
  const headers = new Map<string, string>();
  let key = '';
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && key !== '') {
      headers.set(key, `${headers.get(key)} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      key = '';
      continue;
    }
    const k = line.slice(0, colon).trim().toLowerCase();
    // first occurrence wins, except continuation lines append to the one being read
    if (headers.has(k)) {
      key = '';
      continue;
    }
    key = k;
    headers.set(k, line.slice(colon + 1).trim());
  }
  return { headers, body };
}

function param(value: string, name: string): string | undefined {
  const re = new RegExp(`(?:^|;)\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^\\s;]+))`, 'i');
  const m = re.exec(value);
  return m ? (m[1] ?? m[2]) : undefined;
}

function walk(headers: Map<string, string>, body: string, msg: MimeMessage, depth: number): void {
  const ctype = headers.get('content-type') ?? guessMultipart(body) ?? 'text/plain';
  const type = ctype.split(';')[0]!.trim().toLowerCase();
  const disposition = (headers.get('content-disposition') ?? '').toLowerCase();
  if (type.startsWith('multipart/')) {
    const boundary = param(ctype, 'boundary');
    if (boundary === undefined || depth >= MAX_DEPTH) return;
    for (const part of splitMultipart(body, boundary)) {
      const p = splitHeaders(part);
      walk(p.headers, p.body, msg, depth + 1);
    }
    return;
  }
  if (type === 'message/rfc822' && depth < MAX_DEPTH) {
    const p = splitHeaders(body);
    walk(p.headers, p.body, msg, depth + 1);
    return;
  }
  if (disposition.startsWith('attachment')) return;
  if (type !== 'text/plain' && type !== 'text/html' && !(type === 'text' || type === '')) return;
  const bytes = decodeTransfer(body, (headers.get('content-transfer-encoding') ?? '').trim().toLowerCase());
  const text = decodeCharset(bytes, param(ctype, 'charset'));
  (type === 'text/html' ? msg.html : msg.plain).push(text);
}

/** Some spam is multipart without saying so: a body opening with a `--delimiter` line then part headers. */
function guessMultipart(body: string): string | undefined {
  const m = /^(?:[^\n]*\n){0,5}?--([^\r\n]+?)\r?\nContent-Type:/i.exec(body.slice(0, 2000));
  return m ? `multipart/mixed; boundary="${m[1]}"` : undefined;
}

function splitMultipart(body: string, boundary: string): string[] {
  const delim = `--${boundary}`;
  const parts: string[] = [];
  let start = -1;
  let pos = 0;
  for (;;) {
    const at = body.indexOf(delim, pos);
    if (at < 0) break;
    const lineStart = at === 0 || body[at - 1] === '\n';
    const eol = body.indexOf('\n', at);
    pos = eol < 0 ? body.length : eol + 1;
    if (!lineStart) continue;
    if (start >= 0) parts.push(body.slice(start, at).replace(/\r?\n$/, ''));
    if (body.startsWith('--', at + delim.length)) return parts; // closing delimiter
    start = pos;
  }
  if (start >= 0) parts.push(body.slice(start)); // unterminated: keep what there is
  return parts;
}

/** Decode a body given as a latin1 string into bytes. */
export function decodeTransfer(body: string, encoding: string): Buffer {
  if (encoding === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (encoding === 'quoted-printable') return decodeQuotedPrintable(body);
  return Buffer.from(body, 'latin1');
}

export function decodeQuotedPrintable(s: string): Buffer {
  const out = Buffer.allocUnsafe(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x3d /* = */) {
      const h = s.slice(i + 1, i + 3);
      if (/^[0-9A-Fa-f]{2}$/.test(h)) {
        out[n++] = Number.parseInt(h, 16);
        i += 2;
        continue;
      }
      const soft = /^[ \t]*\r?\n/.exec(s.slice(i + 1, i + 80));
      if (soft) {
        i += soft[0].length;
        continue;
      }
    }
    out[n++] = c & 0xff;
  }
  return out.subarray(0, n);
}

/** Bytes to text in the declared charset; undeclared or unknown: UTF-8 when valid, else Windows-1252. */
export function decodeCharset(bytes: Uint8Array, charset: string | undefined): string {
  if (charset !== undefined) {
    try {
      return new TextDecoder(charset.trim().toLowerCase()).decode(bytes);
    } catch {
      // unknown label: fall through to the guess
    }
  }
  return decodeLenient(bytes);
}

/** Decode RFC 2047 encoded words (=?charset?B|Q?...?=) in a header value; raw 8-bit bytes are guessed. */
export function decodeHeader(v: string): string {
  const raw = decodeLenient(Buffer.from(v, 'latin1'));
  return raw
    .replace(/(\?=)\s+(?==\?)/g, '$1') // whitespace between adjacent encoded words is not text
    .replace(/=\?([^?\s]+)\?([BbQq])\?([^?]*)\?=/g, (_m, cs: string, enc: string, data: string) => {
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : decodeQuotedPrintable(data.replace(/_/g, ' '));
      return decodeCharset(bytes, cs.replace(/\*.*$/, ''));
    });
}
