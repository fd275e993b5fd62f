/**
 * A SentencePiece-style subword tokenizer: BPE over ▁-prefixed pieces with byte fallback.
 * Any JavaScript string round-trips exactly through its UTF-8 encoding (a lone surrogate,
 * which UTF-8 cannot hold, comes back as U+FFFD, as Buffer.from(s) would): characters
 * outside the trained alphabet become <0xNN> byte tokens. Deterministic; saved as a
 * versioned tokenizer.json.
 *
 * Ids: 0 <pad>, 1 <bos>, 2 <eos>, 3 <unk> (kept for compatibility; byte fallback means it
 * is never produced), 4..259 the bytes <0x00>..<0xFF>, then the base characters, then one
 * id per merge, then <unused_N> padding up to vocab_size when training found fewer merges.
 */
import { atomicWriteJsonSync } from '../util/atomic.js';
import { briefValue, READ_LIMITS, readJsonFile } from '../util/files.js';
import { SPACE_SYMBOL, trainBpe } from './bpe-train.js';
import { DataError } from './errors.js';
import { forEachPiece, PRETOKENIZER } from './pretokenize.js';

export const TOKENIZER_FORMAT = 'glam-moe-tokenizer/1';
export const SPECIALS = { pad: 0, bos: 1, eos: 2, unk: 3 } as const;
const SPECIAL_PIECES = ['<pad>', '<bos>', '<eos>', '<unk>'];
export const BYTE_OFFSET = 4;
export const FIRST_LEARNED_ID = BYTE_OFFSET + 256;
/** Smallest vocabulary that leaves room for a useful alphabet and some merges. */
export const MIN_VOCAB = 384;

export interface TokenizerJson {
  format: string;
  model: 'bpe';
  byte_fallback: true;
  pretokenizer: string;
  vocab_size: number;
  special_tokens: { pad: number; bos: number; eos: number; unk: number };
  /** Every piece in id order; ▁ stands for a space. */
  pieces: string[];
  /** Ids FIRST_LEARNED_ID .. FIRST_LEARNED_ID + num_chars - 1 are single characters. */
  num_chars: number;
  /** Merge r joins [left, right] into id FIRST_LEARNED_ID + num_chars + r. */
  merges: Array<[number, number]>;
}

export interface TrainTokenizerOptions {
  vocabSize: number;
  characterCoverage?: number;
  minFrequency?: number;
}

const KEY = 1 << 21;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true }); // a leading U+FEFF is text too
const byteHex = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

export class Tokenizer {
  readonly vocabSize: number;
  readonly pieces: readonly string[];
  readonly numChars: number;
  readonly merges: ReadonlyArray<readonly [number, number]>;
  readonly padId = SPECIALS.pad;
  readonly bosId = SPECIALS.bos;
  readonly eosId = SPECIALS.eos;
  readonly unkId = SPECIALS.unk;
  private readonly charIds = new Map<number, number>();
  private readonly mergeRank = new Map<number, number>();
  private readonly firstMergeId: number;
  private readonly pieceBytes: Uint8Array[];
  private cache = new Map<string, number | number[]>();
  private static readonly CACHE_LIMIT = 1 << 19;

  private constructor(json: TokenizerJson) {
    this.vocabSize = json.vocab_size;
    this.pieces = json.pieces;
    this.numChars = json.num_chars;
    this.merges = json.merges;
    this.firstMergeId = FIRST_LEARNED_ID + json.num_chars;
    for (let i = 0; i < json.num_chars; i++) {
      const ch = json.pieces[FIRST_LEARNED_ID + i]!;
      this.charIds.set(ch === SPACE_SYMBOL ? 0x20 : ch.codePointAt(0)!, FIRST_LEARNED_ID + i);
    }
    json.merges.forEach(([a, b], r) => {
      this.mergeRank.set(a * KEY + b, r);
    });
    this.pieceBytes = json.pieces.map((p, id) => {
      if (id < BYTE_OFFSET || id >= this.firstMergeId + json.merges.length) return new Uint8Array(0);
      if (id < FIRST_LEARNED_ID) return Uint8Array.of(id - BYTE_OFFSET);
      return utf8Encoder.encode(p.replaceAll(SPACE_SYMBOL, ' '));
    });
  }

  /** Train on a piece → count table (see pretokenize.countPieces). */
  static train(counts: ReadonlyMap<string, number>, opts: TrainTokenizerOptions): Tokenizer {
    if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < MIN_VOCAB || opts.vocabSize > KEY) {
      throw new DataError(`vocab_size must be an integer in [${MIN_VOCAB}, ${KEY}], got ${opts.vocabSize}`);
    }
    const model = trainBpe(counts, {
      capacity: opts.vocabSize - FIRST_LEARNED_ID,
      firstId: FIRST_LEARNED_ID,
      characterCoverage: opts.characterCoverage ?? 0.9999,
      minFrequency: opts.minFrequency ?? 2,
    });
    const pieces = [...SPECIAL_PIECES];
    for (let b = 0; b < 256; b++) pieces.push(byteHex(b));
    pieces.push(...model.chars);
    for (const [a, b] of model.merges) pieces.push(pieces[a]! + pieces[b]!);
    for (let i = 0; pieces.length < opts.vocabSize; i++) pieces.push(`<unused_${i}>`);
    return new Tokenizer({
      format: TOKENIZER_FORMAT,
      model: 'bpe',
      byte_fallback: true,
      pretokenizer: PRETOKENIZER,
      vocab_size: opts.vocabSize,
      special_tokens: { ...SPECIALS },
      pieces,
      num_chars: model.chars.length,
      merges: model.merges,
    });
  }

  /** Token ids of `text` (no BOS/EOS unless asked). */
  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const out: number[] = [];
    if (opts.bos) out.push(this.bosId);
    forEachPiece(text, (piece) => {
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        const enc = this.encodePiece(piece);
        ids = enc.length === 1 ? enc[0]! : enc;
        if (this.cache.size >= Tokenizer.CACHE_LIMIT) this.cache = new Map();
        this.cache.set(piece, ids);
      }
      if (typeof ids === 'number') out.push(ids);
      else for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    });
    if (opts.eos) out.push(this.eosId);
    return out;
  }

  private encodePiece(piece: string): number[] {
    let syms: number[] = [];
    for (const ch of piece) {
      const id = this.charIds.get(ch.codePointAt(0)!);
      if (id !== undefined && ch !== SPACE_SYMBOL) syms.push(id);
      else for (const b of utf8Encoder.encode(ch)) syms.push(BYTE_OFFSET + b);
    }
    // apply the lowest-ranked merge present, everywhere in the piece, until none applies
    while (syms.length > 1) {
      let best = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.mergeRank.get(syms[i]! * KEY + syms[i + 1]!);
        if (r !== undefined && r < best) best = r;
      }
      if (best === Number.POSITIVE_INFINITY) break;
      const [a, b] = this.merges[best]!;
      const m = this.firstMergeId + best;
      const next: number[] = [];
      for (let i = 0; i < syms.length; ) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          next.push(m);
          i += 2;
        } else next.push(syms[i++]!);
      }
      syms = next;
    }
    return syms;
  }

  /** Text of token ids; special and unused ids produce nothing. Throws on ids out of range. */
  decode(ids: ArrayLike<number>): string {
    let n = 0;
    for (let i = 0; i < ids.length; i++) n += this.bytesOf(ids[i]!).length;
    const buf = new Uint8Array(n);
    let o = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.bytesOf(ids[i]!);
      buf.set(b, o);
      o += b.length;
    }
    return utf8Decoder.decode(buf);
  }

  private bytesOf(id: number): Uint8Array {
    const b = this.pieceBytes[id];
    if (b === undefined || !Number.isInteger(id)) {
      throw new DataError(`token id ${id} is out of range for a vocabulary of ${this.vocabSize}`);
    }
    return b;
  }

  /** The piece string of an id (▁ for spaces, <0xNN> for bytes). */
  idToPiece(id: number): string {
    const p = this.pieces[id];
    if (p === undefined)
      throw new DataError(`token id ${id} is out of range for a vocabulary of ${this.vocabSize}`);
    return p;
  }

  toJSON(): TokenizerJson {
    return {
      format: TOKENIZER_FORMAT,
      model: 'bpe',
      byte_fallback: true,
      pretokenizer: PRETOKENIZER,
      vocab_size: this.vocabSize,
      special_tokens: { ...SPECIALS },
      pieces: [...this.pieces],
      num_chars: this.numChars,
      merges: this.merges.map(([a, b]) => [a, b]),
    };
  }

  /** Write tokenizer.json atomically. */
  save(file: string): void {
    atomicWriteJsonSync(file, this.toJSON());
  }

  static load(file: string): Tokenizer {
    let raw: unknown;
    try {
      raw = readJsonFile(file, READ_LIMITS.tokenizer, 'tokenizer');
    } catch (err) {
      throw new DataError(`cannot read tokenizer ${(err as Error).message}`);
    }
    return Tokenizer.fromJSON(raw, file);
  }

  /** Validate a parsed tokenizer.json; every inconsistency is an error naming `source`. */
  static fromJSON(raw: unknown, source = 'tokenizer.json'): Tokenizer {
    const bad = (msg: string): never => {
      throw new DataError(`${source}: ${msg}`);
    };
    if (typeof raw !== 'object' || raw === null) return bad('expected a JSON object');
    const j = raw as Partial<TokenizerJson>;
    if (j.format !== TOKENIZER_FORMAT)
      bad(`unsupported format ${briefValue(j.format)}; expected "${TOKENIZER_FORMAT}"`);
    if (j.model !== 'bpe' || j.byte_fallback !== true) bad('expected model "bpe" with byte_fallback true');
    if (j.pretokenizer !== PRETOKENIZER) bad(`unknown pretokenizer ${briefValue(j.pretokenizer)}`);
    const v = j.vocab_size;
    if (!Number.isInteger(v) || (v as number) < FIRST_LEARNED_ID || (v as number) > KEY)
      bad(`invalid vocab_size ${v}`);
    const vocab = v as number;
    const sp = j.special_tokens;
    if (sp?.pad !== 0 || sp.bos !== 1 || sp.eos !== 2 || sp.unk !== 3)
      bad('special_tokens must be pad 0, bos 1, eos 2, unk 3');
    const pieces = j.pieces;
    if (!Array.isArray(pieces) || pieces.length !== vocab || pieces.some((p) => typeof p !== 'string')) {
      bad(`pieces must be ${vocab} strings`);
    }
    const ps = pieces as string[];
    SPECIAL_PIECES.forEach((p, i) => {
      if (ps[i] !== p) bad(`piece ${i} must be ${p}`);
    });
    for (let b = 0; b < 256; b++)
      if (ps[BYTE_OFFSET + b] !== byteHex(b)) bad(`piece ${BYTE_OFFSET + b} must be ${byteHex(b)}`);
    const nc = j.num_chars;
    if (!Number.isInteger(nc) || (nc as number) < 1 || FIRST_LEARNED_ID + (nc as number) > vocab)
      bad(`invalid num_chars ${nc}`);
    const seen = new Set<string>();
    for (let i = 0; i < (nc as number); i++) {
      const ch = ps[FIRST_LEARNED_ID + i]!;
      if ([...ch].length !== 1 || seen.has(ch))
        bad(`piece ${FIRST_LEARNED_ID + i} must be a distinct single character`);
      seen.add(ch);
    }
    const merges = j.merges;
    if (!Array.isArray(merges)) return bad('merges must be an array');
    const first = FIRST_LEARNED_ID + (nc as number);
    if (first + merges.length > vocab) bad(`${merges.length} merges do not fit in vocab_size ${vocab}`);
    merges.forEach((m, r) => {
      const id = first + r;
      if (
        !Array.isArray(m) ||
        m.length !== 2 ||
        !m.every((x) => Number.isInteger(x) && x >= FIRST_LEARNED_ID && x < id)
      ) {
        bad(`merge ${r} must be two earlier learned ids`);
      }
      if (ps[id] !== ps[m[0]]! + ps[m[1]]!)
        bad(`piece ${id} must equal the concatenation of its merge ${m[0]} + ${m[1]}`);
    });
    for (let id = first + merges.length; id < vocab; id++) {
      if (!/^<unused_\d+>$/.test(ps[id]!)) bad(`piece ${id} must be an <unused_N> placeholder`);
    }
    return new Tokenizer({ ...(j as TokenizerJson), pieces: ps, merges: merges as Array<[number, number]> });
  }
}
