/**
 * Reading a prepared dataset for training. Each training row is seqLen + 1 consecutive
 * tokens (inputs and shifted targets) from one category's stream, the category drawn by
 * the mixture weights with the seeded Rng; each category keeps its own cursor and wraps
 * around at its end (an epoch of that category). The whole reading state is a small JSON
 * object (DataPosition) for trainer-state.json: restoring it yields exactly the batches
 * an uninterrupted run would have seen.
 */
import * as path from 'node:path';
import type { Batch } from '../model/glam.js';
import { Rng, type RngState } from '../util/rng.js';
import { CATEGORIES, type Category, isCategory } from './categories.js';
import { DataError } from './errors.js';
import { type Manifest, readManifest } from './manifest.js';
import { pickCategory, resolveMixture } from './mixture.js';
import { TokenStream } from './shards.js';
import { Tokenizer } from './tokenizer.js';

export const POSITION_FORMAT = 'glam-moe-data-position/1';

export interface DataPosition {
  format: typeof POSITION_FORMAT;
  rng: RngState;
  /** Per category: the next token offset in its training stream and how often it wrapped. */
  cursors: Partial<Record<Category, { offset: number; epoch: number }>>;
  /** Rows drawn so far. */
  rows: number;
}

/** Rows of a dataset as stored: each row's tokens and the token after them. */
export interface TokenRows {
  /** rows × (seqLen + 1) token ids, row-major: inputs are [.., 0..seqLen-1], targets [.., 1..seqLen]. */
  tokens: Int32Array;
  rows: number;
  seqLen: number;
  categories: Category[];
}

/** Rows split into the model's batch: inputs and next-token targets, each rows × seqLen. */
export function toBatch(b: TokenRows): Batch {
  const T = b.seqLen;
  const inputs = new Int32Array(b.rows * T);
  const targets = new Int32Array(b.rows * T);
  for (let r = 0; r < b.rows; r++) {
    const row = b.tokens.subarray(r * (T + 1), (r + 1) * (T + 1));
    inputs.set(row.subarray(0, T), r * T);
    targets.set(row.subarray(1), r * T);
  }
  return { inputs, targets, batch: b.rows, seqLen: T };
}

export function validatePosition(p: unknown): DataPosition {
  const bad = (msg: string): never => {
    throw new DataError(`invalid data position: ${msg}`);
  };
  if (typeof p !== 'object' || p === null) return bad('expected an object');
  const q = p as DataPosition;
  if (q.format !== POSITION_FORMAT) bad(`format must be "${POSITION_FORMAT}"`);
  if (!Number.isInteger(q.rows) || q.rows < 0) bad('rows must be a non-negative integer');
  if (typeof q.cursors !== 'object' || q.cursors === null) bad('missing cursors');
  for (const [c, v] of Object.entries(q.cursors)) {
    if (!isCategory(c)) bad(`unknown category ${c}`);
    if (!v || !Number.isInteger(v.offset) || v.offset < 0 || !Number.isInteger(v.epoch) || v.epoch < 0) {
      bad(`cursor of ${c} must have non-negative integer offset and epoch`);
    }
  }
  Rng.fromState(q.rng); // throws on a malformed state
  return q;
}

function checkShape(rows: number, seqLen: number): void {
  if (!Number.isInteger(rows) || rows < 1)
    throw new DataError(`batch size must be a positive integer, got ${rows}`);
  if (!Number.isInteger(seqLen) || seqLen < 1)
    throw new DataError(`sequence length must be a positive integer, got ${seqLen}`);
}

export class Dataset {
  readonly manifest: Manifest;
  readonly tokenizer: Tokenizer;
  /** The weights training samples with (the manifest's unless overridden at open). */
  readonly weights: Record<Category, number>;
  readonly notes: string[];
  private readonly train = new Map<Category, TokenStream>();
  private readonly valid = new Map<Category, TokenStream>();

  private constructor(
    readonly dir: string,
    weights?: Record<Category, number>,
  ) {
    this.manifest = readManifest(path.join(dir, 'manifest.json'));
    this.tokenizer = Tokenizer.load(path.join(dir, this.manifest.tokenizer));
    if (this.tokenizer.vocabSize !== this.manifest.vocab_size) {
      throw new DataError(
        `${dir}: tokenizer has ${this.tokenizer.vocabSize} ids but the manifest says vocab_size ${this.manifest.vocab_size}`,
      );
    }
    try {
      for (const [split, map] of [
        ['train', this.train],
        ['valid', this.valid],
      ] as const) {
        for (const c of CATEGORIES) {
          const s = this.manifest.splits[split][c];
          if (s !== undefined && s.tokens > 0)
            map.set(c, new TokenStream(dir, s.shards, this.manifest.dtype));
        }
      }
    } catch (err) {
      this.close();
      throw err;
    }
    if (weights === undefined) {
      this.weights = { ...this.manifest.weights };
      this.notes = [];
    } else {
      const tokens = Object.fromEntries(CATEGORIES.map((c) => [c, this.train.get(c)?.length ?? 0]));
      const mix = resolveMixture(weights, tokens, this.manifest.config?.min_category_tokens ?? 0);
      this.weights = mix.weights;
      this.notes = mix.notes;
    }
    for (const c of CATEGORIES) {
      if (this.weights[c] > 0 && !this.train.has(c)) {
        this.close();
        throw new DataError(`${dir}: category '${c}' has weight ${this.weights[c]} but no training tokens`);
      }
    }
  }

  /** Open a directory written by prepareData / `glam prepare`; `weights` overrides the mixture. */
  static open(dir: string, opts: { weights?: Record<Category, number> } = {}): Dataset {
    return new Dataset(dir, opts.weights);
  }

  /** Tokens in the training split of a category (0 when absent). */
  trainTokens(c: Category): number {
    return this.train.get(c)?.length ?? 0;
  }

  validTokens(c: Category): number {
    return this.valid.get(c)?.length ?? 0;
  }

  /** The position before the first batch of a run seeded with `seed`. */
  initialPosition(seed: number): DataPosition {
    return { format: POSITION_FORMAT, rng: new Rng(seed).getState(), cursors: {}, rows: 0 };
  }

  /**
   * The next batch of `rows` sequences of seqLen + 1 tokens; advances `position` in place
   * (save a copy, e.g. JSON.stringify(position), to resume exactly from here). With `keep`, only
   * rows [keep.from, keep.to) of that batch are read and returned (one process's share of a batch
   * split between processes); the position advances past the whole batch all the same.
   */
  nextBatch(
    position: DataPosition,
    rows: number,
    seqLen: number,
    keep?: { from: number; to: number },
  ): TokenRows {
    if (!Number.isInteger(rows) || rows < 1)
      throw new DataError(`batch size must be a positive integer, got ${rows}`);
    if (!Number.isInteger(seqLen) || seqLen < 1)
      throw new DataError(`sequence length must be a positive integer, got ${seqLen}`);
    const from = keep?.from ?? 0;
    const to = keep?.to ?? rows;
    if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from < to && to <= rows))
      throw new DataError(`rows to keep [${from}, ${to}) must be a non-empty part of the batch's ${rows}`);
    const rng = Rng.fromState(position.rng);
    const n = seqLen + 1;
    const tokens = new Int32Array((to - from) * n);
    const categories: Category[] = [];
    for (let r = 0; r < rows; r++) {
      const c = pickCategory(this.weights, rng.uniform());
      const stream = this.train.get(c)!;
      const cur = position.cursors[c] ?? { offset: 0, epoch: 0 };
      if (cur.offset >= stream.length) {
        throw new DataError(
          `data position: cursor of '${c}' at token ${cur.offset}, but its stream has ${stream.length} tokens; the position belongs to another dataset`,
        );
      }
      if (r >= from && r < to) {
        stream.readCyclic(cur.offset, n, tokens, (r - from) * n);
        categories.push(c);
      }
      const next = cur.offset + n;
      position.cursors[c] = {
        offset: next % stream.length,
        epoch: cur.epoch + Math.floor(next / stream.length),
      };
    }
    position.rng = rng.getState();
    position.rows += rows;
    return { tokens, rows: to - from, seqLen, categories };
  }

  /** Endless batches from `position` (advanced as they are drawn). */
  *batches(position: DataPosition, rows: number, seqLen: number): Generator<TokenRows> {
    for (;;) yield this.nextBatch(position, rows, seqLen);
  }

  /**
   * The validation split, in a fixed order: each category's stream cut into consecutive
   * windows of seqLen + 1 tokens (a short tail is dropped), `rows` per batch (the last may
   * hold fewer). `maxBatches` bounds the work; `categories` keeps only those categories.
   */
  *validationBatches(
    rows: number,
    seqLen: number,
    opts: { maxBatches?: number; categories?: readonly Category[] } = {},
  ): Generator<TokenRows> {
    checkShape(rows, seqLen);
    const n = seqLen + 1;
    const max = opts.maxBatches ?? Number.POSITIVE_INFINITY;
    if (max <= 0) return;
    let made = 0;
    let tokens = new Int32Array(rows * n);
    let cats: Category[] = [];
    // Round-robin over the categories, so a bounded number of batches still covers all of them.
    const wanted = opts.categories ?? CATEGORIES;
    const cursors = CATEGORIES.filter((c) => this.valid.has(c) && wanted.includes(c)).map((c) => ({
      c,
      off: 0,
    }));
    for (;;) {
      const open = cursors.filter((k) => k.off + n <= this.valid.get(k.c)!.length);
      if (open.length === 0) break;
      for (const k of open) {
        this.valid.get(k.c)!.read(k.off, n, tokens, cats.length * n);
        k.off += n;
        cats.push(k.c);
        if (cats.length === rows) {
          yield { tokens, rows, seqLen, categories: cats };
          if (++made >= max) return;
          tokens = new Int32Array(rows * n);
          cats = [];
        }
      }
    }
    if (cats.length > 0)
      yield { tokens: tokens.slice(0, cats.length * n), rows: cats.length, seqLen, categories: cats };
  }

  close(): void {
    for (const s of this.train.values()) s.close();
    for (const s of this.valid.values()) s.close();
    this.train.clear();
    this.valid.clear();
  }
}

/** Open a prepared dataset directory. */
export function openDataset(dir: string, opts: { weights?: Record<Category, number> } = {}): Dataset {
  return Dataset.open(dir, opts);
}
