/** The data pipeline: corpus readers, quality filter, mixture, tokenizer, shards, dataset reader. */
export { CATEGORIES, type Category, CURATED, isCategory, PAPER_WEIGHTS, WEB } from './categories.js';
export {
  BUILTIN_SOURCES,
  type DataConfig,
  defaultDataConfig,
  loadDataConfig,
  parseDataConfig,
  type QualityConfig,
  type SourceSpec,
} from './config.js';
export {
  type DataPosition,
  Dataset,
  openDataset,
  type TokenRows,
  toBatch,
  validatePosition,
} from './dataset.js';
export { contentHash, Deduper, normalizeForDedup } from './dedup.js';
export type { DocumentSource, RawDocument } from './document.js';
export { DataError } from './errors.js';
export { MANIFEST_FORMAT, type Manifest, readManifest } from './manifest.js';
export { type Mixture, pickCategory, resolveMixture } from './mixture.js';
export { type PrepareOptions, type PrepareProgress, type PrepareResult, prepareData } from './prepare.js';
export { countPieces, pretokenize } from './pretokenize.js';
export {
  featurize,
  keepProbability,
  LogisticRegression,
  paretoKeep,
  paretoSample,
  QualityClassifier,
  trainLogistic,
} from './quality.js';
export { dtypeFor, ShardWriter, type TokenDtype, TokenStream } from './shards.js';
export { openSource } from './sources/index.js';
export { TOKENIZER_FORMAT, Tokenizer, type TokenizerJson } from './tokenizer.js';
