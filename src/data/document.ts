import type { Category } from './categories.js';

/** One document as read from a source, before filtering and tokenization. */
export interface RawDocument {
  text: string;
  category: Category;
  /** Where it came from, for messages and stats: `package/file` or `path:line`. */
  source: string;
}

/** A named group of documents of known categories (a built-in corpus or a user source). */
export interface DocumentSource {
  name: string;
  /** Categories this source may yield, for progress and for the "no data" report. */
  categories: readonly Category[];
  /** Rough size in bytes, for the progress bar; 0 when unknown. */
  sizeHint: number;
  read(): AsyncIterable<RawDocument>;
}
