/**
 * Token shards: flat little-endian uint16 (vocabularies up to 65536) or uint32 token files,
 * documents joined by EOS, so numpy.memmap or any pread reader can use them directly and
 * no split ever has to fit in memory. A category's split is one logical stream spread over
 * shard files of at most `shardTokens` tokens.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import * as path from 'node:path';
import { openRegularFile } from '../util/files.js';
import { DataError } from './errors.js';

export type TokenDtype = 'uint16' | 'uint32';

export interface ShardInfo {
  /** Path relative to the dataset directory. */
  file: string;
  tokens: number;
}

export function dtypeFor(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

export function bytesPerToken(dtype: TokenDtype): number {
  return dtype === 'uint16' ? 2 : 4;
}

const bigEndian = endianness() === 'BE';

function toLittleEndian(buf: Buffer, dtype: TokenDtype): void {
  if (!bigEndian) return;
  if (dtype === 'uint16') buf.swap16();
  else buf.swap32();
}

/** Appends token sequences to numbered shard files `<prefix>-00000.bin`, ... */
export class ShardWriter {
  private readonly buf: Uint16Array | Uint32Array;
  private fill = 0;
  private fd = -1;
  private inShard = 0;
  private readonly shards: ShardInfo[] = [];
  totalTokens = 0;
  documents = 0;

  constructor(
    private readonly root: string,
    /** Relative path prefix, e.g. `train/books`. */
    private readonly prefix: string,
    readonly dtype: TokenDtype,
    private readonly shardTokens: number,
    bufferTokens = 1 << 20,
  ) {
    const n = Math.min(bufferTokens, shardTokens);
    this.buf = dtype === 'uint16' ? new Uint16Array(n) : new Uint32Array(n);
  }

  /** One document's tokens followed by the separator (EOS). */
  writeDocument(ids: ArrayLike<number>, eos: number): void {
    this.write(ids);
    this.write([eos]);
    this.documents++;
  }

  write(ids: ArrayLike<number>): void {
    for (let i = 0; i < ids.length; i++) {
      this.buf[this.fill++] = ids[i]!;
      if (this.fill === this.buf.length || this.inShard + this.fill === this.shardTokens) this.flush();
    }
  }

  private flush(): void {
    if (this.fill === 0) return;
    if (this.fd < 0) {
      const rel = `${this.prefix}-${String(this.shards.length).padStart(5, '0')}.bin`;
      this.fd = openSync(path.join(this.root, rel), 'wx');
      this.shards.push({ file: rel, tokens: 0 });
    }
    const bytes = Buffer.from(this.buf.buffer, 0, this.fill * this.buf.BYTES_PER_ELEMENT);
    const copy = bigEndian ? Buffer.from(bytes) : bytes;
    toLittleEndian(copy, this.dtype);
    let off = 0;
    while (off < copy.length) off += writeSync(this.fd, copy, off, copy.length - off);
    this.inShard += this.fill;
    this.totalTokens += this.fill;
    this.shards[this.shards.length - 1]!.tokens += this.fill;
    this.fill = 0;
    if (this.inShard >= this.shardTokens) this.closeShard();
  }

  private closeShard(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.inShard = 0;
  }

  /** Flush and close; the list of shard files written (empty when nothing was written). */
  finish(): ShardInfo[] {
    this.flush();
    this.closeShard();
    return this.shards;
  }
}

/**
 * Random access to one logical token stream over its shard files, by positioned reads
 * (pread): only the requested window is ever in memory.
 */
export class TokenStream {
  readonly length: number;
  private readonly fds: number[] = [];
  private readonly starts: number[] = [];
  private readonly bpt: number;
  private scratch = Buffer.alloc(0);

  constructor(
    root: string,
    readonly shards: readonly ShardInfo[],
    readonly dtype: TokenDtype,
  ) {
    this.bpt = bytesPerToken(dtype);
    let start = 0;
    try {
      for (const s of shards) {
        const file = path.join(root, s.file);
        let opened: { fd: number; size: number };
        try {
          opened = openRegularFile(file);
        } catch (err) {
          throw new DataError(`dataset shard missing or unreadable: ${(err as Error).message}`);
        }
        this.fds.push(opened.fd);
        const size = opened.size;
        if (size !== s.tokens * this.bpt) {
          throw new DataError(
            `dataset shard ${file} has ${size} bytes, the manifest says ${s.tokens} ${dtype} tokens (${s.tokens * this.bpt} bytes): truncated or replaced; run glam prepare again`,
          );
        }
        this.starts.push(start);
        start += s.tokens;
      }
    } catch (err) {
      this.close();
      throw err;
    }
    this.length = start;
  }

  /** Copy tokens [offset, offset + n) of the stream into out[at ...]. */
  read(offset: number, n: number, out: Int32Array, at = 0): void {
    if (offset < 0 || offset + n > this.length)
      throw new RangeError(`read [${offset}, ${offset + n}) outside 0..${this.length}`);
    let shard = this.shardOf(offset);
    while (n > 0) {
      const local = offset - this.starts[shard]!;
      const take = Math.min(n, this.shards[shard]!.tokens - local);
      const bytes = take * this.bpt;
      if (this.scratch.length < bytes) this.scratch = Buffer.alloc(Math.max(bytes, 1 << 16));
      let got = 0;
      while (got < bytes) {
        const r = readSync(this.fds[shard]!, this.scratch, got, bytes - got, local * this.bpt + got);
        if (r === 0) throw new DataError(`dataset shard ${this.shards[shard]!.file} ended early`);
        got += r;
      }
      if (bigEndian) toLittleEndian(this.scratch.subarray(0, bytes), this.dtype); // bytes → host order
      const view =
        this.dtype === 'uint16'
          ? new Uint16Array(this.scratch.buffer, this.scratch.byteOffset, take)
          : new Uint32Array(this.scratch.buffer, this.scratch.byteOffset, take);
      out.set(view, at);
      at += take;
      offset += take;
      n -= take;
      shard++;
    }
  }

  /** Read n tokens starting at offset, wrapping around the end of the stream. */
  readCyclic(offset: number, n: number, out: Int32Array, at = 0): void {
    if (this.length === 0) throw new DataError('cannot read from an empty token stream');
    offset %= this.length;
    while (n > 0) {
      const take = Math.min(n, this.length - offset);
      this.read(offset, take, out, at);
      at += take;
      n -= take;
      offset = 0;
    }
  }

  private shardOf(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  close(): void {
    for (const fd of this.fds.splice(0)) closeSync(fd);
  }
}
