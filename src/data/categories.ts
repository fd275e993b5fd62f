/** GLaM's six data categories and the paper's mixture weights (GLaM, Table 3). */
import { briefValue } from '../util/files.js';
export const CATEGORIES = ['webpages', 'wikipedia', 'conversations', 'forums', 'books', 'news'] as const;
export type Category = (typeof CATEGORIES)[number];

export const PAPER_WEIGHTS: Readonly<Record<Category, number>> = {
  webpages: 0.42,
  wikipedia: 0.06,
  conversations: 0.28,
  forums: 0.02,
  books: 0.2,
  news: 0.02,
};

/** Curated categories: positives of the quality classifier. */
export const CURATED: readonly Category[] = ['books', 'wikipedia', 'news'];
/** General web text: the negatives of the classifier, and what it filters. */
export const WEB: readonly Category[] = ['webpages'];

export function isCategory(x: unknown): x is Category {
  return typeof x === 'string' && (CATEGORIES as readonly string[]).includes(x);
}

export function unknownCategoryMessage(name: unknown): string {
  return `unknown category ${briefValue(name)}; expected one of ${CATEGORIES.join(', ')}`;
}
