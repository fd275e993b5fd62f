/** HTML to plain text for mail bodies and user HTML documents (via html-to-text). */
import { convert, type HtmlToTextOptions } from 'html-to-text';

const heading = { uppercase: false, leadingLineBreaks: 2, trailingLineBreaks: 1 };

const OPTIONS: HtmlToTextOptions = {
  wordwrap: false,
  limits: { maxInputLength: 2_000_000 },
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    { selector: 'style', format: 'skip' },
    { selector: 'script', format: 'skip' },
    // layout tables are common in mail; read them as blocks of text, not as grids
    { selector: 'table', format: 'block' },
    { selector: 'tr', format: 'block' },
    { selector: 'td', format: 'block' },
    { selector: 'th', format: 'block' },
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((h) => ({ selector: h, options: heading })),
  ],
};

export function htmlToText(html: string): string {
  return convert(html, OPTIONS);
}

/** Cheap test so plain text with a stray `<` is not sent through the HTML parser. */
export function looksLikeHtml(s: string): boolean {
  return /<(html|body|div|p|br|table|font|span|a\s|!doctype)\b/i.test(s.slice(0, 4000));
}
