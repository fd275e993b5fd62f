/**
 * Mail to plain text for the corpus: the MIME reader in mime.ts extracts the text parts;
 * this module converts HTML-only mail and strips what is not the author's prose: quoted
 * replies, signatures, list footers and sponsor blocks.
 */
import { normalizeNewlines, tidy } from '../text.js';
import { htmlToText, looksLikeHtml } from './html.js';
import { parseMime } from './mime.js';

export interface ParsedEmail {
  subject: string;
  body: string;
  isReply: boolean;
  /** A mailing-list message (List-Id / List-Post / Mailing-List header). */
  isList: boolean;
  /** The sender's address. */
  from: string;
}

export function parseEmail(raw: Uint8Array): ParsedEmail {
  const m = parseMime(raw);
  const h = (k: string) => m.headers.get(k);
  let body = m.plain.join('\n\n');
  if (body.trim() === '' && m.html.length > 0) body = m.html.map(htmlToText).join('\n\n');
  else if (looksLikeHtml(body)) body = htmlToText(body);
  const subject = (h('subject') ?? '').replace(/\s+/g, ' ').trim();
  const from = /[\w.+-]+@[\w.-]+/.exec(h('from') ?? '')?.[0] ?? '';
  return {
    subject,
    body: cleanEmailBody(body),
    isReply: /^(re|aw|sv)\s*(\[\d+\])?:/i.test(subject) || h('in-reply-to') !== undefined,
    isList: h('list-id') !== undefined || h('list-post') !== undefined || h('mailing-list') !== undefined,
    from,
  };
}

const FOOTER_START = [
  /^_{20,}\s*$/, // Mailman footer rule
  /^-{30,}\s*$/, // SourceForge sponsor block
  /^-- $/, // signature separator (RFC 3676)
  /^To unsubscribe/i,
  /^Yahoo! Groups Sponsor/i,
];

/** Remove quoted text, attribution lines, signatures and list footers from a mail body. */
export function cleanEmailBody(body: string): string {
  const lines = normalizeNewlines(body).split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (FOOTER_START.some((re) => re.test(line)) && i >= lines.length - 40) break;
    if (/^\s*(>|\|)/.test(line)) continue; // quoted reply
    if (/\b(wrote|writes|said):\s*$/i.test(line) && nextIsQuote(lines, i)) continue; // "X wrote:" attribution
    if (/^-----\s*Original Message\s*-----/i.test(line)) break;
    if (/^[A-Za-z0-9+/=]{40,}$/.test(line)) continue; // undecoded base64 or uuencoded data
    out.push(line.replace(/\u00a0/g, ' '));
  }
  return tidy(out.join('\n'));
}

function nextIsQuote(lines: readonly string[], i: number): boolean {
  for (let j = i + 1; j < lines.length && j <= i + 2; j++) {
    if (lines[j]!.trim() !== '') return /^\s*>/.test(lines[j]!);
  }
  return false;
}

/** One mail rendered as a document: the subject as a title line, then the body. */
export function renderEmail(e: ParsedEmail): string {
  return e.subject === '' ? e.body : `${e.subject}\n\n${e.body}`;
}
