/**
 * Exact deduplication: a document is a duplicate when its normalised text (Unicode NFKC,
 * lower case, whitespace collapsed) hashes to one already seen. 128 bits of SHA-1 per
 * document are kept, so memory grows by ~50 bytes per distinct document, not its text.
 */
import { createHash } from 'node:crypto';

export function normalizeForDedup(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ').trim();
}

export function contentHash(text: string): string {
  return createHash('sha1').update(normalizeForDedup(text), 'utf8').digest('base64').slice(0, 22);
}

export class Deduper {
  private readonly seen = new Set<string>();
  duplicates = 0;

  /** True the first time a text (up to normalisation) is seen, false for every repeat. */
  add(text: string): boolean {
    const h = contentHash(text);
    if (this.seen.has(h)) {
      this.duplicates++;
      return false;
    }
    this.seen.add(h);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
