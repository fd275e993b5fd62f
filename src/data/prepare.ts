/**
 * `prepareData`: the whole GLaM data pipeline, from sources to a dataset directory.
 *
 * 1. read every source; cut long texts into document-sized pieces; drop short and exactly
 *    duplicated documents; spool the rest to a temporary JSONL file (so memory holds
 *    offsets, not text) and reservoir-sample curated and web documents;
 * 2. train the quality classifier on the sample and report its held-out accuracy;
 * 3. apply the Pareto keep rule to the filtered categories, counting the pieces of the kept
 *    documents; train the tokenizer on those counts;
 * 4. per category, shuffle the kept documents (seeded per category), send every k-th to validation,
 *    tokenize and write the shards; write tokenizer.json and manifest.json.
 *
 * Everything is built in a sibling temporary directory that replaces `out` only at the
 * end, so a failed or interrupted run leaves the previous dataset untouched. `out` is
 * replaced only when it holds nothing but a dataset prepareData wrote; build directories
 * of interrupted runs (killed, so no cleanup ran) are removed by the next run.
 * The mixture is applied when training reads the data (see dataset.ts), not here, so
 * weights can change without re-preparing.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { ATOMIC_TEMP, atomicWriteJsonSync } from '../util/atomic.js';
import { fileKind, lstatOrUndefined, READ_LIMITS, readJsonFile } from '../util/files.js';
import { type ProcessIdentity, selfIdentity, staleReason } from '../util/lock.js';
import { Rng } from '../util/rng.js';
import { CATEGORIES, type Category } from './categories.js';
import { type DataConfig, defaultDataConfig } from './config.js';
import { Deduper } from './dedup.js';
import { DataError } from './errors.js';
import {
  type CategoryStats,
  type ClassifierStats,
  MANIFEST_FORMAT,
  type Manifest,
  type SplitCategory,
} from './manifest.js';
import { resolveMixture } from './mixture.js';
import { countPieces, prunePieceCounts } from './pretokenize.js';
import { paretoKeep, QualityClassifier } from './quality.js';
import { dtypeFor, ShardWriter } from './shards.js';
import { openSource } from './sources/index.js';
import { chunkText } from './text.js';
import { Tokenizer } from './tokenizer.js';

/** How far the classifier reads into a document, for training and scoring alike. */
const CLASSIFIER_CHARS = 6000;

export interface PrepareProgress {
  /** A new phase with `total` units of work. */
  phase(name: string, total: number): void;
  update(done: number, status: string): void;
  log(message: string): void;
}

export interface PrepareOptions {
  /** Output directory (replaced if it holds a previous dataset). */
  out: string;
  config?: DataConfig;
  /** Overrides config.vocab_size. */
  vocabSize?: number;
  /** Overrides config.seed. */
  seed?: number;
  progress?: PrepareProgress;
}

export interface PrepareResult {
  dir: string;
  manifest: Manifest;
}

const quiet: PrepareProgress = { phase() {}, update() {}, log() {} };

function stageRng(seed: number, stage: number): Rng {
  return new Rng((seed + Math.imul(stage, 0x9e3779b9)) >>> 0);
}

function emptyStats(): CategoryStats {
  return { read: 0, duplicates: 0, short: 0, scored: 0, filtered: 0, kept: 0, chars_kept: 0 };
}

/** Uniform sample of up to k items from a stream (Algorithm R, seeded). */
class Reservoir {
  readonly items: string[] = [];
  private seen = 0;
  constructor(
    private readonly k: number,
    private readonly rng: Rng,
  ) {}
  offer(item: string): void {
    this.seen++;
    if (this.items.length < this.k) this.items.push(item);
    else {
      const j = this.rng.int(this.seen);
      if (j < this.k) this.items[j] = item;
    }
  }
}

/** Append-only JSONL spool of documents with their byte offsets, for random re-reading. */
class Spool {
  private readonly fd: number;
  private pending: string[] = [];
  private pendingBytes = 0;
  private size = 0;
  readonly offsets: number[] = [];
  readonly lengths: number[] = [];
  readonly categories: Category[] = [];
  private scratch = Buffer.alloc(1 << 16);

  constructor(readonly file: string) {
    this.fd = openSync(file, 'wx+');
  }

  add(text: string, category: Category): void {
    const line = `${JSON.stringify(text)}\n`;
    const bytes = Buffer.byteLength(line);
    this.offsets.push(this.size);
    this.lengths.push(bytes);
    this.categories.push(category);
    this.size += bytes;
    this.pending.push(line);
    this.pendingBytes += bytes;
    if (this.pendingBytes >= 1 << 22) this.flush();
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const buf = Buffer.from(this.pending.join(''), 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    this.pending = [];
    this.pendingBytes = 0;
  }

  get count(): number {
    return this.offsets.length;
  }

  get(i: number): string {
    const n = this.lengths[i]!;
    if (this.scratch.length < n) this.scratch = Buffer.alloc(n * 2);
    let got = 0;
    while (got < n) got += readSync(this.fd, this.scratch, got, n - got, this.offsets[i]! + got);
    return JSON.parse(this.scratch.toString('utf8', 0, n)) as string;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Marker inside a temporary build directory: who builds it, so a dead builder's can be removed. */
const BUILD_MARKER = '.glam-prepare.json';
const BUILD_MARKER_FORMAT = 'glam-moe-prepare/1';
const SHARD_FILE = /^[a-z]+-\d{5}\.bin$/;

/**
 * Entries of a directory that a dataset written by prepareData does not hold: anything but
 * manifest.json (in our format), its tokenizer, and train/ and valid/ holding only shard
 * files. Empty means the directory is provably a dataset we wrote, safe to replace.
 */
export function foreignDatasetEntries(dir: string): string[] {
  const entries = readdirSync(dir, { withFileTypes: true });
  if (!entries.some((e) => e.name === 'manifest.json')) return entries.map((e) => e.name);
  let manifestFormat: unknown;
  try {
    manifestFormat = (readJsonFile(path.join(dir, 'manifest.json'), READ_LIMITS.json) as { format?: unknown })
      ?.format;
  } catch {}
  if (manifestFormat !== MANIFEST_FORMAT) return ['manifest.json (not a glam-moe-data manifest)'];
  const foreign: string[] = [];
  for (const e of entries) {
    if (e.name === 'manifest.json' || ATOMIC_TEMP.test(e.name)) continue;
    if (e.name === 'tokenizer.json' && e.isFile()) continue;
    if ((e.name === 'train' || e.name === 'valid') && e.isDirectory()) {
      for (const f of readdirSync(path.join(dir, e.name), { withFileTypes: true })) {
        if (!(f.isFile() && SHARD_FILE.test(f.name))) foreign.push(`${e.name}/${f.name}`);
      }
      continue;
    }
    foreign.push(e.isDirectory() ? `${e.name}/` : e.name);
  }
  return foreign;
}

function listed(names: string[], max = 5): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/**
 * Whether prepareData may write `out`: absent, or a directory holding only a dataset this
 * program wrote (see foreignDatasetEntries). Anything else stops the run, untouched, with a
 * message saying what is there. Returns whether `out` exists.
 */
function checkReplaceable(out: string): boolean {
  const st = lstatOrUndefined(out);
  if (st === undefined) return false;
  if (st.isSymbolicLink())
    throw new DataError(
      `--out ${out} is a symbolic link; pass the directory it points to (${realpathOrSelf(out)}) as --out`,
    );
  if (!st.isDirectory()) throw new DataError(`--out ${out} is ${fileKind(st)}, not a directory`);
  const foreign = foreignDatasetEntries(out);
  if (foreign.length > 0) {
    throw new DataError(
      `--out ${out} is not a prepared dataset: it holds files glam prepare did not write (${listed(foreign)}), ` +
        'and only a dataset it made is replaced. Choose another --out, or move those files away first',
    );
  }
  return true;
}

/** Replace `out` by the finished `tmp` directory (checking `out` again: time has passed). */
function installDir(tmp: string, out: string): void {
  if (!checkReplaceable(out)) {
    renameSync(tmp, out);
    return;
  }
  const old = `${out}.old-${process.pid}`;
  renameSync(out, old);
  renameSync(tmp, out);
  rmSync(old, { recursive: true, force: true });
}

function realpathOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/**
 * Remove what dead runs of prepare left beside `out`: their build directories (`out.tmp-PID`,
 * recognised by their marker, from a process on this host that no longer exists) and replaced
 * datasets (`out.old-PID`, when they hold only a dataset). Anything else is left alone.
 */
function removeStaleBuilds(out: string, progress: PrepareProgress): void {
  const parent = path.dirname(out);
  const base = path.basename(out);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(tmp|old)-(\\d+)$`);
  for (const name of names) {
    const m = pattern.exec(name);
    if (m === null || Number(m[2]) === process.pid) continue;
    const dir = path.join(parent, name);
    if (!lstatOrUndefined(dir)?.isDirectory()) continue;
    let owned = false;
    if (m[1] === 'tmp') {
      try {
        const marker = readJsonFile(path.join(dir, BUILD_MARKER), READ_LIMITS.json) as ProcessIdentity & {
          format?: unknown;
        };
        owned = marker.format === BUILD_MARKER_FORMAT && staleReason(marker) !== undefined;
      } catch {}
    } else {
      owned = !existsSync(path.join(dir, BUILD_MARKER)) && foreignDatasetEntries(dir).length === 0;
      owned &&= staleReason({ pid: Number(m[2]), host: hostname() }) !== undefined;
    }
    if (owned) {
      rmSync(dir, { recursive: true, force: true });
      progress.log(`removed ${dir}, left by an interrupted glam prepare`);
    }
  }
}

export async function prepareData(opts: PrepareOptions): Promise<PrepareResult> {
  const t0 = performance.now();
  const cfg: DataConfig = structuredClone(opts.config ?? defaultDataConfig());
  if (opts.vocabSize !== undefined) cfg.vocab_size = opts.vocabSize;
  if (opts.seed !== undefined) cfg.seed = opts.seed;
  if (cfg.tokenizer.file !== undefined) {
    // A given tokenizer fixes the vocabulary; an explicit --vocab-size must agree with it.
    const ids = Tokenizer.load(cfg.tokenizer.file).vocabSize;
    if (opts.vocabSize !== undefined && opts.vocabSize !== ids) {
      throw new DataError(`--vocab-size ${opts.vocabSize} disagrees with tokenizer.file (${ids} ids)`);
    }
    cfg.vocab_size = ids;
  }
  if (!Number.isInteger(cfg.vocab_size) || cfg.vocab_size < 384) {
    throw new DataError(`vocab_size must be an integer >= 384, got ${cfg.vocab_size}`);
  }
  const progress = opts.progress ?? quiet;
  const out = path.resolve(opts.out);
  const tmp = `${out}.tmp-${process.pid}`;
  checkReplaceable(out);
  mkdirSync(path.dirname(out), { recursive: true });
  removeStaleBuilds(out, progress);
  try {
    mkdirSync(tmp);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new DataError(`${tmp} already exists and is not this run's; move it away and try again`);
    throw err;
  }
  atomicWriteJsonSync(path.join(tmp, BUILD_MARKER), { format: BUILD_MARKER_FORMAT, ...selfIdentity() });
  mkdirSync(path.join(tmp, 'train'));
  mkdirSync(path.join(tmp, 'valid'));
  const spool = new Spool(path.join(tmp, 'spool.jsonl'));
  try {
    const manifest = await run(cfg, tmp, spool, progress, t0);
    spool.close();
    rmSync(spool.file, { force: true });
    atomicWriteJsonSync(path.join(tmp, 'manifest.json'), manifest);
    rmSync(path.join(tmp, BUILD_MARKER));
    installDir(tmp, out);
    return { dir: out, manifest };
  } catch (err) {
    try {
      spool.close();
    } catch {}
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

async function run(
  cfg: DataConfig,
  dir: string,
  spool: Spool,
  progress: PrepareProgress,
  t0: number,
): Promise<Manifest> {
  const q = cfg.quality;
  const stats = new Map<Category, CategoryStats>(CATEGORIES.map((c) => [c, emptyStats()]));
  const st = (c: Category) => stats.get(c)!;

  // 1. read, chunk, drop short and duplicate documents, spool, sample for the classifier
  const sources = cfg.sources.map((s) => openSource(s, cfg));
  const totalBytes = sources.reduce((s, x) => s + x.sizeHint, 0);
  progress.phase('read', totalBytes);
  const dedup = new Deduper();
  const sampleRng = stageRng(cfg.seed, 1);
  const pos = new Reservoir(q.max_docs_per_class, sampleRng);
  const neg = new Reservoir(q.max_docs_per_class, sampleRng);
  let doneBytes = 0;
  for (const src of sources) {
    const srcStart = doneBytes;
    let srcChars = 0;
    for await (const doc of src.read()) {
      srcChars += doc.text.length;
      for (const piece of chunkText(doc.text, cfg.max_doc_chars)) {
        const s = st(doc.category);
        s.read++;
        const text = piece.trim();
        if (text.length < cfg.min_doc_chars) {
          s.short++;
          continue;
        }
        if (!dedup.add(text)) {
          s.duplicates++;
          continue;
        }
        spool.add(text, doc.category);
        if (q.enabled && q.positive.includes(doc.category)) pos.offer(text.slice(0, CLASSIFIER_CHARS));
        if (q.enabled && q.negative.includes(doc.category)) neg.offer(text.slice(0, CLASSIFIER_CHARS));
      }
      doneBytes = srcStart + Math.min(src.sizeHint, srcChars);
      progress.update(doneBytes, `${src.name}: ${spool.count} docs`);
    }
    doneBytes = srcStart + src.sizeHint;
  }
  spool.flush();
  progress.update(totalBytes, `${spool.count} docs, ${dedup.duplicates} duplicates removed`);
  if (spool.count === 0) throw new DataError('the sources yielded no documents');

  // 2. the quality classifier
  let classifier: QualityClassifier | undefined;
  let classifierStats: ClassifierStats | null = null;
  const filterSet = new Set(q.filter);
  if (q.enabled && q.filter.length > 0) {
    if (pos.items.length < 2 || neg.items.length < 2) {
      progress.log(
        `quality filter skipped: needs curated (${q.positive.join(', ')}) and web (${q.negative.join(', ')}) documents, ` +
          `found ${pos.items.length} and ${neg.items.length}`,
      );
    } else {
      progress.phase('classifier', 1);
      const { classifier: clf, report } = QualityClassifier.train(pos.items, neg.items, {
        bits: q.hash_bits,
        epochs: q.epochs,
        learningRate: q.learning_rate,
        heldoutFraction: q.heldout_fraction,
        rng: stageRng(cfg.seed, 2),
      });
      classifier = clf;
      classifierStats = {
        train_docs: report.trainDocs,
        heldout_docs: report.heldoutDocs,
        train_accuracy: report.trainAccuracy,
        heldout_accuracy: report.heldoutAccuracy,
        positive: [...q.positive],
        negative: [...q.negative],
      };
      progress.update(
        1,
        `held-out accuracy ${(report.heldoutAccuracy * 100).toFixed(1)}% on ${report.heldoutDocs} docs`,
      );
    }
  }
  pos.items.length = 0;
  neg.items.length = 0;

  // 3. keep rule, and piece counts of what is kept for the tokenizer
  progress.phase('filter', spool.count);
  const keepRng = stageRng(cfg.seed, 3);
  const kept = new Uint8Array(spool.count);
  const counts = new Map<string, number>();
  let scored = 0;
  let passed = 0;
  for (let i = 0; i < spool.count; i++) {
    const c = spool.categories[i]!;
    const text = spool.get(i);
    let keep = true;
    if (classifier !== undefined && filterSet.has(c)) {
      const score = classifier.score(text.slice(0, CLASSIFIER_CHARS));
      keep = paretoKeep(score, q.alpha, keepRng);
      scored++;
      st(c).scored++;
      if (keep) passed++;
      else st(c).filtered++;
    }
    if (!keep) continue;
    kept[i] = 1;
    st(c).kept++;
    st(c).chars_kept += text.length;
    countPieces(text, counts);
    if (counts.size > cfg.tokenizer.max_words)
      prunePieceCounts(counts, Math.floor(cfg.tokenizer.max_words * 0.75));
    if (i % 256 === 0)
      progress.update(
        i,
        `${scored > 0 ? `pass rate ${((100 * passed) / scored).toFixed(1)}%` : 'no filter'}`,
      );
  }
  progress.update(spool.count, scored > 0 ? `kept ${passed} of ${scored} scored` : 'no filter');

  progress.phase('tokenizer', 1);
  const tokenizer =
    cfg.tokenizer.file !== undefined
      ? Tokenizer.load(cfg.tokenizer.file)
      : Tokenizer.train(counts, {
          vocabSize: cfg.vocab_size,
          characterCoverage: cfg.tokenizer.character_coverage,
          minFrequency: cfg.tokenizer.min_frequency,
        });
  const trainPieces = counts.size;
  counts.clear();
  progress.update(
    1,
    `${tokenizer.vocabSize} ids: ${tokenizer.numChars} characters, ${tokenizer.merges.length} merges`,
  );
  tokenizer.save(path.join(dir, 'tokenizer.json'));

  // 4. shuffle, split, tokenize, write
  let totalChars = 0;
  for (const c of CATEGORIES) totalChars += st(c).chars_kept;
  progress.phase('tokenize', totalChars);
  const dtype = dtypeFor(tokenizer.vocabSize);

  const every = cfg.valid_fraction > 0 ? Math.max(2, Math.round(1 / cfg.valid_fraction)) : 0;
  const splits: Manifest['splits'] = { train: {}, valid: {} };
  let charsDone = 0;
  let tokensDone = 0;
  for (const c of CATEGORIES) {
    const ids: number[] = [];
    for (let i = 0; i < spool.count; i++) if (kept[i] === 1 && spool.categories[i] === c) ids.push(i);
    if (ids.length === 0) continue;
    // A generator per category, so one category's split does not depend on how many documents
    // another kept (datasets that differ only in their web filtering share curated splits).
    stageRng(cfg.seed, 4 + CATEGORIES.indexOf(c)).shuffle(ids);
    const train = new ShardWriter(dir, `train/${c}`, dtype, cfg.shard_tokens);
    const valid = new ShardWriter(dir, `valid/${c}`, dtype, cfg.shard_tokens);
    ids.forEach((docIndex, k) => {
      const text = spool.get(docIndex);
      const tokens = tokenizer.encode(text);
      (every > 0 && k % every === every - 1 ? valid : train).writeDocument(tokens, tokenizer.eosId);
      charsDone += text.length;
      tokensDone += tokens.length + 1;
      if (k % 64 === 0) progress.update(charsDone, `${c}: ${tokensDone.toLocaleString('en-US')} tokens`);
    });
    const put = (w: ShardWriter): SplitCategory => {
      const shards = w.finish();
      return { documents: w.documents, tokens: w.totalTokens, shards };
    };
    const tr = put(train);
    const va = put(valid);
    if (tr.tokens > 0) splits.train[c] = tr;
    if (va.tokens > 0) splits.valid[c] = va;
  }
  progress.update(totalChars, `${tokensDone.toLocaleString('en-US')} tokens`);

  const trainTokens = Object.fromEntries(CATEGORIES.map((c) => [c, splits.train[c]?.tokens ?? 0]));
  const mixture = resolveMixture(cfg.weights, trainTokens, cfg.min_category_tokens);
  const catStats: Partial<Record<Category, CategoryStats>> = {};
  for (const c of CATEGORIES) if (st(c).read > 0) catStats[c] = st(c);
  return {
    format: MANIFEST_FORMAT,
    created: new Date().toISOString(),
    vocab_size: tokenizer.vocabSize,
    dtype,
    eos_id: tokenizer.eosId,
    bos_id: tokenizer.bosId,
    pad_id: tokenizer.padId,
    tokenizer: 'tokenizer.json',
    seed: cfg.seed,
    config: cfg,
    weights: mixture.weights,
    weights_requested: { ...cfg.weights },
    notes: mixture.notes,
    splits,
    stats: {
      categories: catStats,
      classifier: classifierStats,
      filter: {
        enabled: classifier !== undefined,
        alpha: q.alpha,
        categories: [...q.filter],
        scored,
        kept: passed,
        pass_rate: scored > 0 ? passed / scored : 1,
      },
      tokenizer: {
        vocab_size: tokenizer.vocabSize,
        num_chars: tokenizer.numChars,
        merges: tokenizer.merges.length,
        train_pieces: trainPieces,
      },
      sources: sources.map((s) => s.name),
      seconds: (performance.now() - t0) / 1000,
    },
  };
}
