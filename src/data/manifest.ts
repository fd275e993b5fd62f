/** manifest.json of a prepared dataset directory: what the shards hold and how they were made. */
import { briefValue, READ_LIMITS, readJsonFile } from '../util/files.js';
import { CATEGORIES, type Category, isCategory } from './categories.js';
import type { DataConfig } from './config.js';
import { DataError } from './errors.js';
import type { ShardInfo, TokenDtype } from './shards.js';

export const MANIFEST_FORMAT = 'glam-moe-data/1';

export interface SplitCategory {
  documents: number;
  tokens: number;
  shards: ShardInfo[];
}

export interface CategoryStats {
  /** Documents (after chunking long texts) read from the sources. */
  read: number;
  /** Exact duplicates removed. */
  duplicates: number;
  /** Dropped as shorter than min_doc_chars. */
  short: number;
  /** Scored by the quality classifier (filtered categories only). */
  scored: number;
  /** Dropped by the quality filter's keep rule. */
  filtered: number;
  /** Documents in the dataset (train + valid). */
  kept: number;
  chars_kept: number;
}

export interface ClassifierStats {
  train_docs: number;
  heldout_docs: number;
  train_accuracy: number;
  heldout_accuracy: number;
  positive: Category[];
  negative: Category[];
}

export interface Manifest {
  format: string;
  created: string;
  vocab_size: number;
  dtype: TokenDtype;
  eos_id: number;
  bos_id: number;
  pad_id: number;
  tokenizer: string;
  seed: number;
  /** The data config the dataset was built from (paths absolute). */
  config: DataConfig;
  /** Mixture weights for sampling, normalised over the categories with training data. */
  weights: Record<Category, number>;
  weights_requested: Record<Category, number>;
  notes: string[];
  splits: {
    train: Partial<Record<Category, SplitCategory>>;
    valid: Partial<Record<Category, SplitCategory>>;
  };
  stats: {
    categories: Partial<Record<Category, CategoryStats>>;
    classifier: ClassifierStats | null;
    filter: {
      enabled: boolean;
      alpha: number;
      categories: Category[];
      scored: number;
      kept: number;
      pass_rate: number;
    };
    tokenizer: { vocab_size: number; num_chars: number; merges: number; train_pieces: number };
    sources: string[];
    seconds: number;
  };
}

/** Read and check a manifest; the errors say what is wrong and to re-run prepare. */
export function readManifest(file: string): Manifest {
  let raw: unknown;
  try {
    raw = readJsonFile(file, READ_LIMITS.json, 'dataset manifest');
  } catch (err) {
    throw new DataError(`cannot read dataset manifest ${file}: ${(err as Error).message}; run glam prepare`);
  }
  const bad = (msg: string): never => {
    throw new DataError(`${file}: ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null) return bad('expected a JSON object');
  const m = raw as Manifest;
  if (m.format !== MANIFEST_FORMAT)
    bad(`unsupported format ${briefValue(m.format)}; expected "${MANIFEST_FORMAT}"`);
  if (m.dtype !== 'uint16' && m.dtype !== 'uint32') bad(`unknown dtype ${briefValue(m.dtype)}`);
  if (!Number.isInteger(m.vocab_size) || m.vocab_size < 1) bad(`invalid vocab_size ${m.vocab_size}`);
  if (m.dtype === 'uint16' && m.vocab_size > 65536) bad('uint16 tokens cannot hold a vocabulary over 65536');
  if (typeof m.splits !== 'object' || m.splits === null) bad('missing splits');
  for (const split of ['train', 'valid'] as const) {
    const s = m.splits[split];
    if (typeof s !== 'object' || s === null) bad(`missing splits.${split}`);
    for (const [c, v] of Object.entries(s)) {
      if (!isCategory(c)) bad(`splits.${split}: unknown category ${briefValue(c)}`);
      if (!v || !Array.isArray(v.shards) || !Number.isInteger(v.tokens))
        bad(`splits.${split}.${c}: malformed`);
      const sum = v.shards.reduce((acc, sh) => acc + sh.tokens, 0);
      if (sum !== v.tokens) bad(`splits.${split}.${c}: shard token counts add up to ${sum}, not ${v.tokens}`);
    }
  }
  for (const c of CATEGORIES) {
    const w = m.weights?.[c];
    if (typeof w !== 'number' || w < 0) bad(`weights.${c} missing or negative`);
  }
  return m;
}
