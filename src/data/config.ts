/**
 * The data config (`glam prepare --data-config FILE`): which corpora, their categories,
 * the mixture weights, the tokenizer's vocabulary size and the pipeline's knobs. Every
 * field is checked; errors name the config file and the offending key.
 */
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { briefValue, clip, READ_LIMITS, readTextFile } from '../util/files.js';
import {
  CATEGORIES,
  type Category,
  CURATED,
  isCategory,
  PAPER_WEIGHTS,
  unknownCategoryMessage,
  WEB,
} from './categories.js';
import { DataError } from './errors.js';

export const BUILTIN_SOURCES = [
  'gutenberg',
  'brown',
  'wordnet',
  'spamassassin',
  'sotu',
  'nlp-corpus',
] as const;
export type BuiltinName = (typeof BUILTIN_SOURCES)[number];

export type FileFormat = 'text' | 'jsonl' | 'html';
export type TextSplit = 'file' | 'paragraph' | 'line';

export interface FileSourceSpec {
  kind: 'files';
  /** Absolute path of a file or a directory (searched recursively, sorted). */
  path: string;
  category: Category;
  format: FileFormat;
  /** jsonl: the string field holding the text. */
  field: string;
  /** text: what one document is. */
  split: TextSplit;
  /** WHATWG encoding label; UTF-8 (strict) by default. */
  encoding: string;
  /** Directory sources: file name endings to read. */
  extensions: string[];
}

export interface BuiltinSourceSpec {
  kind: 'builtin';
  name: BuiltinName;
}

export type SourceSpec = FileSourceSpec | BuiltinSourceSpec;

export interface QualityConfig {
  enabled: boolean;
  /** Pareto shape of the keep rule: keep when pareto(alpha) > 1 - score. */
  alpha: number;
  /** Categories whose documents are filtered (GLaM filters its webpages). */
  filter: Category[];
  positive: Category[];
  negative: Category[];
  /** log2 of the number of hashed feature buckets. */
  hash_bits: number;
  epochs: number;
  learning_rate: number;
  /** Documents per class drawn (reservoir) to train the classifier. */
  max_docs_per_class: number;
  heldout_fraction: number;
}

export interface DataConfig {
  sources: SourceSpec[];
  weights: Record<Category, number>;
  vocab_size: number;
  seed: number;
  valid_fraction: number;
  /** Longer documents are cut at paragraph boundaries into pieces of about this size. */
  max_doc_chars: number;
  /** Shorter documents (after cleaning) are dropped. */
  min_doc_chars: number;
  /**
   * A category with fewer training tokens is not sampled (its weight is spread over the
   * rest), unless no category has this many.
   */
  min_category_tokens: number;
  /** Tokens per shard file. */
  shard_tokens: number;
  quality: QualityConfig;
  tokenizer: {
    character_coverage: number;
    min_frequency: number;
    max_words: number;
    /**
     * An existing tokenizer.json to use instead of training one (absolute path), e.g. to
     * prepare more data for a model that already has a vocabulary, or two datasets whose
     * losses must be comparable token for token.
     */
    file?: string;
  };
}

export const DEFAULT_QUALITY: QualityConfig = {
  enabled: true,
  alpha: 9,
  filter: [...WEB],
  positive: [...CURATED],
  negative: [...WEB],
  hash_bits: 18,
  epochs: 4,
  learning_rate: 0.2,
  max_docs_per_class: 5000,
  heldout_fraction: 0.2,
};

/**
 * The default dataset's vocabulary: fixed, so `data/default` is the same whichever command or
 * model prepares it first (models adopt the dataset's vocabulary when training).
 */
export const DEFAULT_VOCAB_SIZE = 4096;

export function defaultDataConfig(): DataConfig {
  return {
    sources: BUILTIN_SOURCES.map((name) => ({ kind: 'builtin', name })),
    weights: { ...PAPER_WEIGHTS },
    vocab_size: DEFAULT_VOCAB_SIZE,
    seed: 0,
    valid_fraction: 0.01,
    max_doc_chars: 16000,
    min_doc_chars: 40,
    min_category_tokens: 50_000,
    shard_tokens: 1 << 26,
    quality: { ...DEFAULT_QUALITY, filter: [...DEFAULT_QUALITY.filter] },
    tokenizer: { character_coverage: 0.9999, min_frequency: 2, max_words: 2_000_000 },
  };
}

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

class Checker {
  constructor(readonly file: string) {}
  fail(key: string, msg: string): never {
    throw new DataError(`${this.file}: ${key}: ${msg}`);
  }
  keys(obj: Json, key: string, allowed: readonly string[]): void {
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k))
        this.fail(key === '' ? k : `${key}.${k}`, `unknown key; expected one of ${allowed.join(', ')}`);
    }
  }
  num(v: unknown, key: string, min: number, max = Number.POSITIVE_INFINITY, integer = false): number {
    if (typeof v !== 'number' || !Number.isFinite(v))
      this.fail(key, `expected a number, got ${briefValue(v)}`);
    if (integer && !Number.isInteger(v)) this.fail(key, `expected an integer, got ${v}`);
    if (v < min || v > max) this.fail(key, `must be in [${min}, ${max}], got ${v}`);
    return v;
  }
  str(v: unknown, key: string): string {
    if (typeof v !== 'string' || v === '')
      this.fail(key, `expected a non-empty string, got ${briefValue(v)}`);
    return v;
  }
  bool(v: unknown, key: string): boolean {
    if (typeof v !== 'boolean') this.fail(key, `expected true or false, got ${briefValue(v)}`);
    return v;
  }
  category(v: unknown, key: string): Category {
    if (!isCategory(v)) this.fail(key, unknownCategoryMessage(v));
    return v;
  }
  categories(v: unknown, key: string): Category[] {
    if (!Array.isArray(v)) this.fail(key, 'expected an array of categories');
    return v.map((c, i) => this.category(c, `${key}[${i}]`));
  }
  oneOf<T extends string>(v: unknown, key: string, allowed: readonly T[]): T {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.fail(key, `expected one of ${allowed.join(', ')}, got ${briefValue(v)}`);
    }
    return v as T;
  }
}

/** Mixture weights: known categories, non-negative, at least one positive; missing ones are 0. */
export function parseWeights(v: unknown, c: Checker | string, key = 'weights'): Record<Category, number> {
  const ch: Checker = typeof c === 'string' ? new Checker(c) : c;
  if (!isObject(v)) ch.fail(key, 'expected an object mapping categories to weights');
  const out = Object.fromEntries(CATEGORIES.map((k) => [k, 0])) as Record<Category, number>;
  for (const [k, w] of Object.entries(v)) {
    out[ch.category(k, `${key}.${k}`)] = ch.num(w, `${key}.${k}`, 0);
  }
  if (!Object.values(out).some((w) => w > 0)) ch.fail(key, 'at least one weight must be positive');
  return out;
}

const TOP_KEYS = [
  'sources',
  'include_default',
  'weights',
  'vocab_size',
  'seed',
  'valid_fraction',
  'max_doc_chars',
  'min_doc_chars',
  'min_category_tokens',
  'shard_tokens',
  'quality',
  'tokenizer',
];
const SOURCE_KEYS = ['path', 'category', 'format', 'field', 'split', 'encoding', 'extensions', 'builtin'];
const QUALITY_KEYS = Object.keys(DEFAULT_QUALITY);

/**
 * Validate a parsed data config. `file` names it in errors; relative source paths are
 * resolved against `baseDir`, and each must exist.
 */
export function parseDataConfig(raw: unknown, file: string, baseDir: string): DataConfig {
  const ch: Checker = new Checker(file);
  if (!isObject(raw)) ch.fail('(top level)', 'expected a JSON object');
  ch.keys(raw, '', TOP_KEYS);
  const cfg = defaultDataConfig();
  const includeDefault =
    raw.include_default === undefined
      ? raw.sources === undefined
      : ch.bool(raw.include_default, 'include_default');
  const sources: SourceSpec[] = includeDefault ? [...cfg.sources] : [];
  if (raw.sources !== undefined) {
    if (!Array.isArray(raw.sources)) ch.fail('sources', 'expected an array');
    raw.sources.forEach((s, i) => {
      sources.push(parseSource(s, ch, `sources[${i}]`, baseDir));
    });
  }
  if (sources.length === 0)
    ch.fail('sources', 'no sources: give at least one, or set "include_default": true');
  cfg.sources = sources;
  if (raw.weights !== undefined) cfg.weights = parseWeights(raw.weights, ch);
  if (raw.vocab_size !== undefined) cfg.vocab_size = ch.num(raw.vocab_size, 'vocab_size', 384, 1 << 20, true);
  if (raw.seed !== undefined) cfg.seed = ch.num(raw.seed, 'seed', 0, 2 ** 32 - 1, true);
  if (raw.valid_fraction !== undefined)
    cfg.valid_fraction = ch.num(raw.valid_fraction, 'valid_fraction', 0, 0.5);
  if (raw.max_doc_chars !== undefined)
    cfg.max_doc_chars = ch.num(raw.max_doc_chars, 'max_doc_chars', 256, 1e8, true);
  if (raw.min_doc_chars !== undefined)
    cfg.min_doc_chars = ch.num(raw.min_doc_chars, 'min_doc_chars', 1, 1e6, true);
  if (raw.min_category_tokens !== undefined)
    cfg.min_category_tokens = ch.num(raw.min_category_tokens, 'min_category_tokens', 0, 2 ** 52, true);
  if (raw.shard_tokens !== undefined)
    cfg.shard_tokens = ch.num(raw.shard_tokens, 'shard_tokens', 1024, 2 ** 31, true);
  if (raw.quality !== undefined) cfg.quality = parseQuality(raw.quality, ch);
  if (raw.tokenizer !== undefined) {
    const t = raw.tokenizer;
    if (!isObject(t)) ch.fail('tokenizer', 'expected an object');
    ch.keys(t, 'tokenizer', [...Object.keys(cfg.tokenizer), 'file']);
    if (t.file !== undefined) cfg.tokenizer.file = path.resolve(baseDir, ch.str(t.file, 'tokenizer.file'));
    if (t.character_coverage !== undefined)
      cfg.tokenizer.character_coverage = ch.num(t.character_coverage, 'tokenizer.character_coverage', 0.5, 1);
    if (t.min_frequency !== undefined)
      cfg.tokenizer.min_frequency = ch.num(t.min_frequency, 'tokenizer.min_frequency', 1, 1e9, true);
    if (t.max_words !== undefined)
      cfg.tokenizer.max_words = ch.num(t.max_words, 'tokenizer.max_words', 1000, 1e8, true);
  }
  return cfg;
}

function parseSource(s: unknown, ch: Checker, key: string, baseDir: string): SourceSpec {
  if (!isObject(s)) ch.fail(key, 'expected an object like {"path": "corpus.jsonl", "category": "books"}');
  ch.keys(s, key, SOURCE_KEYS);
  if (s.builtin !== undefined) {
    if (Object.keys(s).length > 1) ch.fail(key, '"builtin" takes no other keys');
    return { kind: 'builtin', name: ch.oneOf(s.builtin, `${key}.builtin`, BUILTIN_SOURCES) };
  }
  const rel = ch.str(s.path, `${key}.path`);
  const abs = path.resolve(baseDir, rel);
  if (!existsSync(abs)) ch.fail(`${key}.path`, `file or directory not found: ${clip(abs)}`);
  if (s.category === undefined)
    ch.fail(`${key}.category`, `missing; expected one of ${CATEGORIES.join(', ')}`);
  const category = ch.category(s.category, `${key}.category`);
  const format =
    s.format === undefined
      ? guessFormat(abs)
      : ch.oneOf<FileFormat>(s.format, `${key}.format`, ['text', 'jsonl', 'html']);
  const field = s.field === undefined ? 'text' : ch.str(s.field, `${key}.field`);
  const split =
    s.split === undefined
      ? 'file'
      : ch.oneOf<TextSplit>(s.split, `${key}.split`, ['file', 'paragraph', 'line']);
  const encoding = s.encoding === undefined ? 'utf-8' : ch.str(s.encoding, `${key}.encoding`);
  try {
    new TextDecoder(encoding);
  } catch {
    ch.fail(`${key}.encoding`, `unknown encoding ${briefValue(encoding)}`);
  }
  let extensions: string[];
  if (s.extensions === undefined)
    extensions = format === 'jsonl' ? ['.jsonl'] : format === 'html' ? ['.html', '.htm'] : ['.txt'];
  else {
    if (!Array.isArray(s.extensions) || s.extensions.length === 0)
      ch.fail(`${key}.extensions`, 'expected a non-empty array');
    extensions = s.extensions.map((e, i) => ch.str(e, `${key}.extensions[${i}]`));
  }
  return { kind: 'files', path: abs, category, format, field, split, encoding, extensions };
}

function guessFormat(p: string): FileFormat {
  if (statSync(p).isFile()) {
    if (/\.jsonl$/i.test(p)) return 'jsonl';
    if (/\.html?$/i.test(p)) return 'html';
  }
  return 'text';
}

function parseQuality(q: unknown, ch: Checker): QualityConfig {
  if (!isObject(q)) ch.fail('quality', 'expected an object');
  ch.keys(q, 'quality', QUALITY_KEYS);
  const out: QualityConfig = { ...DEFAULT_QUALITY };
  if (q.enabled !== undefined) out.enabled = ch.bool(q.enabled, 'quality.enabled');
  if (q.alpha !== undefined) out.alpha = ch.num(q.alpha, 'quality.alpha', 0.01, 1000);
  if (q.filter !== undefined) out.filter = ch.categories(q.filter, 'quality.filter');
  if (q.positive !== undefined) out.positive = ch.categories(q.positive, 'quality.positive');
  if (q.negative !== undefined) out.negative = ch.categories(q.negative, 'quality.negative');
  if (q.hash_bits !== undefined) out.hash_bits = ch.num(q.hash_bits, 'quality.hash_bits', 8, 24, true);
  if (q.epochs !== undefined) out.epochs = ch.num(q.epochs, 'quality.epochs', 1, 100, true);
  if (q.learning_rate !== undefined)
    out.learning_rate = ch.num(q.learning_rate, 'quality.learning_rate', 1e-6, 100);
  if (q.max_docs_per_class !== undefined)
    out.max_docs_per_class = ch.num(q.max_docs_per_class, 'quality.max_docs_per_class', 2, 1e7, true);
  if (q.heldout_fraction !== undefined)
    out.heldout_fraction = ch.num(q.heldout_fraction, 'quality.heldout_fraction', 0, 0.9);
  const overlap = out.positive.filter((c) => out.negative.includes(c));
  if (overlap.length > 0) ch.fail('quality', `categories both positive and negative: ${overlap.join(', ')}`);
  return out;
}

/** Read and validate a data config file. */
export function loadDataConfig(file: string): DataConfig {
  let text: string;
  try {
    text = readTextFile(file, READ_LIMITS.json, 'data config');
  } catch (err) {
    throw new DataError(`cannot read data config ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DataError(`${file}: invalid JSON: ${(err as Error).message}`);
  }
  return parseDataConfig(raw, file, path.dirname(path.resolve(file)));
}
