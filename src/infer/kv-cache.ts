/**
 * The key/value cache of the inference engine: fixed-size blocks of token slots in one pool per layer,
 * handed to sequences on demand, under a memory budget fixed when the pool is made.
 *
 * - A sequence holds a list of block ids (its block table); token j of the sequence lives in slot
 *   blocks[j / blockSize]·blockSize + j % blockSize of every layer's K and V arrays.
 * - Blocks are reference-counted: `fork` gives a new sequence that shares all of its parent's blocks
 *   (an evaluation context scored against several continuations, the beams of a beam search); the
 *   first write into a shared, partly filled last block copies it first (copy on write). Full blocks
 *   are never written again, so they stay shared.
 * - Admission is by reservation: a request reserves the blocks it can ever need before it starts
 *   (`reserve`), so a running request never finds the pool empty; one that could never fit is refused
 *   with a message saying how much it needs, instead of running out of memory half-way.
 */
import { alignedFloat32 } from '../backend/index.js';
import type { GlamConfig } from '../model/config.js';

export const DEFAULT_BLOCK_SIZE = 16;

export interface KvCacheOptions {
  /** Bytes of K and V storage over all layers; the pool holds floor(budget / bytesPerBlock) blocks. */
  budgetBytes: number;
  /** Token slots per block (default 16). */
  blockSize?: number;
}

/** Thrown when blocks are asked for beyond what the pool (or a reservation) can give. */
export class KvCacheFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvCacheFullError';
  }
}

/** Blocks promised to one request; its sequences draw from it. */
export class KvReservation {
  /** Blocks this reservation's sequences hold now (each shared block counted once, by its allocator). */
  held = 0;
  released = false;

  constructor(
    readonly id: number,
    /** Blocks promised. */
    readonly blocks: number,
  ) {}
}

/** One sequence's view of the cache. */
export class KvSequence {
  /** Block ids, in position order. */
  readonly blocks: number[] = [];
  /** Tokens cached (positions 0..length-1). */
  length = 0;
  freed = false;

  constructor(readonly reservation: KvReservation | undefined) {}
}

export interface KvCacheUsage {
  blockSize: number;
  blocksTotal: number;
  /** Blocks holding tokens now. */
  blocksUsed: number;
  /** Blocks promised to running requests and not yet used by them. */
  blocksReserved: number;
  bytesPerBlock: number;
  bytesTotal: number;
  bytesUsed: number;
}

export class KvCachePool {
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly layers: number;
  /** Floats per token slot and layer (n_heads · d_head). */
  readonly width: number;
  readonly bytesPerBlock: number;
  /** Per layer: [numBlocks · blockSize, width]. */
  readonly k: Float32Array[] = [];
  readonly v: Float32Array[] = [];
  private readonly refs: Int32Array;
  private readonly owner: Int32Array;
  private readonly freeList: number[] = [];
  private readonly reservations = new Map<number, KvReservation>();
  private nextReservation = 1;
  /** Σ over live reservations of (blocks − held). */
  private outstanding = 0;

  constructor(config: GlamConfig, opts: KvCacheOptions) {
    const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    if (!Number.isInteger(blockSize) || blockSize < 1) {
      throw new Error(`KV cache block size must be an integer >= 1, got ${blockSize}`);
    }
    this.blockSize = blockSize;
    this.layers = config.n_layers;
    this.width = config.n_heads * config.d_head;
    this.bytesPerBlock = 2 * this.layers * blockSize * this.width * 4;
    if (!(Number.isFinite(opts.budgetBytes) && opts.budgetBytes >= 0)) {
      throw new Error(`KV cache budget must be a number of bytes >= 0, got ${opts.budgetBytes}`);
    }
    this.numBlocks = Math.floor(opts.budgetBytes / this.bytesPerBlock);
    if (this.numBlocks < 1) {
      throw new Error(
        `a KV cache budget of ${formatBytes(opts.budgetBytes)} holds no block: one block of ${blockSize} tokens needs ${formatBytes(this.bytesPerBlock)} for this model`,
      );
    }
    const floats = this.numBlocks * blockSize * this.width;
    for (let l = 0; l < this.layers; l++) {
      this.k.push(alignedFloat32(floats));
      this.v.push(alignedFloat32(floats));
    }
    this.refs = new Int32Array(this.numBlocks);
    this.owner = new Int32Array(this.numBlocks);
    for (let b = this.numBlocks - 1; b >= 0; b--) this.freeList.push(b);
  }

  /** Blocks needed to hold `tokens` positions of one sequence. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /** Blocks neither used nor promised. */
  get available(): number {
    return this.freeList.length - this.outstanding;
  }

  usage(): KvCacheUsage {
    const used = this.numBlocks - this.freeList.length;
    return {
      blockSize: this.blockSize,
      blocksTotal: this.numBlocks,
      blocksUsed: used,
      blocksReserved: this.outstanding,
      bytesPerBlock: this.bytesPerBlock,
      bytesTotal: this.numBlocks * this.bytesPerBlock,
      bytesUsed: used * this.bytesPerBlock,
    };
  }

  /** Promises `blocks` blocks, or returns undefined when fewer are available now. */
  reserve(blocks: number): KvReservation | undefined {
    if (!Number.isInteger(blocks) || blocks < 0)
      throw new Error(`reserve: blocks must be an integer >= 0, got ${blocks}`);
    if (blocks > this.available) return undefined;
    const r = new KvReservation(this.nextReservation++, blocks);
    this.reservations.set(r.id, r);
    this.outstanding += blocks;
    return r;
  }

  /** Ends a reservation; its sequences must have been released. */
  unreserve(r: KvReservation): void {
    if (r.released) return;
    if (r.held !== 0) {
      throw new Error(
        `unreserve: reservation ${r.id} still holds ${r.held} block(s); release its sequences first`,
      );
    }
    r.released = true;
    this.outstanding -= r.blocks;
    this.reservations.delete(r.id);
  }

  /** An empty sequence drawing on `reservation` (or on unreserved blocks when none). */
  newSequence(reservation?: KvReservation): KvSequence {
    if (reservation?.released) throw new Error('newSequence: the reservation has ended');
    return new KvSequence(reservation);
  }

  /** A sequence sharing every block of `parent` (same tokens), drawing on the same reservation. */
  fork(parent: KvSequence): KvSequence {
    if (parent.freed) throw new Error('fork: the sequence was released');
    const child = new KvSequence(parent.reservation);
    for (const b of parent.blocks) {
      this.refs[b]!++;
      child.blocks.push(b);
    }
    child.length = parent.length;
    return child;
  }

  /** Returns a sequence's blocks (those no other sequence shares go back to the pool). */
  release(seq: KvSequence): void {
    if (seq.freed) return;
    seq.freed = true;
    for (const b of seq.blocks) this.unref(b);
    seq.blocks.length = 0;
  }

  /** Drops the cached tokens from position `length` on (a beam that backs up, a retried suffix). */
  truncate(seq: KvSequence, length: number): void {
    if (!(Number.isInteger(length) && length >= 0 && length <= seq.length)) {
      throw new Error(`truncate: length must be in [0, ${seq.length}], got ${length}`);
    }
    const keep = this.blocksFor(length);
    while (seq.blocks.length > keep) this.unref(seq.blocks.pop()!);
    seq.length = length;
  }

  /**
   * Makes room for `count` more tokens of `seq` and writes their slot indices to slots[at..at+count).
   * The tokens count as cached from here on (the caller writes their K and V rows before reading them).
   */
  append(seq: KvSequence, count: number, slots: Int32Array, at: number): void {
    if (seq.freed) throw new Error('append: the sequence was released');
    const bs = this.blockSize;
    let p = seq.length;
    const end = p + count;
    // A partly filled last block that others share is copied before it is written (copy on write).
    if (p % bs !== 0 && count > 0) {
      const bi = Math.floor(p / bs);
      const b = seq.blocks[bi]!;
      if (this.refs[b]! > 1) {
        const copy = this.allocate(seq.reservation);
        const n = (p % bs) * this.width;
        for (let l = 0; l < this.layers; l++) {
          this.k[l]!.copyWithin(copy * bs * this.width, b * bs * this.width, b * bs * this.width + n);
          this.v[l]!.copyWithin(copy * bs * this.width, b * bs * this.width, b * bs * this.width + n);
        }
        this.unref(b);
        seq.blocks[bi] = copy;
      }
    }
    for (let i = 0; p < end; p++, i++) {
      const bi = Math.floor(p / bs);
      if (bi === seq.blocks.length) seq.blocks.push(this.allocate(seq.reservation));
      slots[at + i] = seq.blocks[bi]! * bs + (p % bs);
    }
    seq.length = end;
  }

  private allocate(r: KvReservation | undefined): number {
    const fromReservation = r !== undefined && r.held < r.blocks;
    if (!fromReservation && this.available < 1) {
      throw new KvCacheFullError(
        r === undefined
          ? `KV cache full: all ${this.numBlocks} blocks are used or promised`
          : `KV cache: reservation ${r.id} of ${r.blocks} block(s) is used up and no unreserved block is free`,
      );
    }
    const b = this.freeList.pop()!;
    this.refs[b] = 1;
    this.owner[b] = r?.id ?? 0;
    if (r !== undefined) {
      r.held++;
      if (fromReservation) this.outstanding--;
    }
    return b;
  }

  private unref(b: number): void {
    if (--this.refs[b]! > 0) return;
    this.freeList.push(b);
    const r = this.reservations.get(this.owner[b]!);
    if (r !== undefined) {
      r.held--;
      // A block promised and used goes back to the promise while the reservation lives.
      if (r.held < r.blocks) this.outstanding++;
    }
  }
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
