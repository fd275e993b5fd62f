/** manifest.json of a prepared dataset directory: what the shards hold and how they were made. */
import * as path from 'node:path';
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

/**
 * A path the manifest names must be relative and stay inside the dataset directory (no
 * absolute paths, no `..`), so a manifest can never make the reader open other files.
 */
function insideDataset(p: unknown, key: string, bad: (msg: string) => never): void {
  if (typeof p !== 'string' || p === '') bad(`${key} must be a file name, got ${briefValue(p)}`);
  const s = p as string;
  if (path.isAbsolute(s) || s.includes('\\') || s.split('/').some((part) => part === '..' || part === ''))
    bad(`${key} ${briefValue(s)} must be a relative path inside the dataset directory`);
}

/** Read and check a manifest; the errors say what is wrong and to re-run prepare. */
export function readManifest(file: string): Manifest {
  let raw: unknown;
  try {
    raw = readJsonFile(file, READ_LIMITS.json, 'dataset manifest');
  } catch (err) {
    throw new DataError(`cannot read dataset manifest ${(err as Error).message}; run glam prepare`);
  }
  const bad = (msg: string): never => {
    throw new DataError(`${file}: ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('expected a JSON object');
  const m = raw as Manifest;
  const count = (v: unknown, key: string): void => {
    if (!Number.isSafeInteger(v) || (v as number) < 0)
      bad(`${key} must be a non-negative integer, got ${briefValue(v)}`);
  };
  if (m.format !== MANIFEST_FORMAT)
    bad(`unsupported format ${briefValue(m.format)}; expected "${MANIFEST_FORMAT}"`);
  if (m.dtype !== 'uint16' && m.dtype !== 'uint32') bad(`unknown dtype ${briefValue(m.dtype)}`);
  if (!Number.isInteger(m.vocab_size) || m.vocab_size < 1 || m.vocab_size > 2 ** 32)
    bad(`invalid vocab_size ${briefValue(m.vocab_size)}`);
  if (m.dtype === 'uint16' && m.vocab_size > 65536) bad('uint16 tokens cannot hold a vocabulary over 65536');
  for (const key of ['eos_id', 'bos_id', 'pad_id'] as const) {
    if (!Number.isInteger(m[key]) || m[key] < 0 || m[key] >= m.vocab_size)
      bad(`${key} must be a token id below vocab_size, got ${briefValue(m[key])}`);
  }
  insideDataset(m.tokenizer, 'tokenizer', bad);
  if (m.notes !== undefined && (!Array.isArray(m.notes) || m.notes.some((n) => typeof n !== 'string')))
    bad('notes must be an array of strings');
  if (m.config !== undefined && (typeof m.config !== 'object' || m.config === null))
    bad(`config must be an object, got ${briefValue(m.config)}`);
  if (typeof m.splits !== 'object' || m.splits === null) bad('missing splits');
  for (const split of ['train', 'valid'] as const) {
    const s = m.splits[split];
    if (typeof s !== 'object' || s === null || Array.isArray(s)) bad(`missing splits.${split}`);
    for (const [c, v] of Object.entries(s)) {
      const key = `splits.${split}.${c}`;
      if (!isCategory(c)) bad(`splits.${split}: unknown category ${briefValue(c)}`);
      if (typeof v !== 'object' || v === null) bad(`${key} must be an object {documents, tokens, shards}`);
      count(v.tokens, `${key}.tokens`);
      if (v.documents !== undefined) count(v.documents, `${key}.documents`);
      if (!Array.isArray(v.shards)) bad(`${key}.shards must be an array of {file, tokens}`);
      let sum = 0;
      v.shards.forEach((sh: unknown, i: number) => {
        const at = `${key}.shards[${i}]`;
        if (typeof sh !== 'object' || sh === null)
          bad(`${at} must be an object {file, tokens}, got ${briefValue(sh)}`);
        const shard = sh as { file: unknown; tokens: unknown };
        insideDataset(shard.file, `${at}.file`, bad);
        count(shard.tokens, `${at}.tokens`);
        sum += shard.tokens as number;
      });
      if (sum !== v.tokens) bad(`${key}: shard token counts add up to ${sum}, not ${v.tokens}`);
    }
  }
  if (typeof m.weights !== 'object' || m.weights === null) bad('missing weights');
  for (const c of CATEGORIES) {
    const w = m.weights[c];
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0)
      bad(`weights.${c} missing, negative or not finite`);
  }
  return m;
}
