/**
 * Byte-pair-encoding training on a piece → count table (word frequencies of a sample, not
 * the corpus itself, so it is fast). Characters covering `characterCoverage` of the
 * sample form the base alphabet (the rest fall back to bytes when encoding); then the most
 * frequent adjacent pair is merged repeatedly until the vocabulary is full. Pair counts
 * are updated incrementally and kept in a max-heap with lazy deletion; ties break on the
 * smaller (left, right) id pair, so training is deterministic.
 */
export const SPACE_SYMBOL = '\u2581'; // ▁

export interface BpeTrainOptions {
  /** Number of ids available for characters and merges. */
  capacity: number;
  /** First id to assign (ids below are specials and bytes). */
  firstId: number;
  characterCoverage: number;
  /** Stop when the best pair occurs fewer times than this. */
  minFrequency: number;
}

export interface BpeModel {
  /** Base characters in id order (firstId, firstId + 1, ...), ▁ standing for the space. */
  chars: string[];
  /** Merge r joins ids [left, right] into id firstId + chars.length + r. */
  merges: Array<[number, number]>;
}

const isSurrogate = (cp: number) => cp >= 0xd800 && cp <= 0xdfff;

/** The symbol a code point trains as: ▁ for space; undefined for what must use bytes. */
function symbolOf(cp: number): string | undefined {
  if (cp === 0x20) return SPACE_SYMBOL;
  if (cp === 0x2581 || isSurrogate(cp)) return undefined; // a literal ▁ would be ambiguous
  return String.fromCodePoint(cp);
}

export function chooseAlphabet(counts: ReadonlyMap<string, number>, coverage: number, max: number): string[] {
  const freq = new Map<string, number>();
  let total = 0;
  for (const [piece, c] of counts) {
    for (const ch of piece) {
      const s = symbolOf(ch.codePointAt(0)!);
      if (s === undefined) continue;
      freq.set(s, (freq.get(s) ?? 0) + c);
      total += c;
    }
  }
  const sorted = [...freq.entries()].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const out: string[] = [];
  let acc = 0;
  for (const [s, c] of sorted) {
    if (out.length >= max || (acc >= coverage * total && out.length > 0)) break;
    out.push(s);
    acc += c;
  }
  return out;
}

/** Max-heap of (count, key) with the larger count first and the smaller key on ties. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Remove the top; returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    if (this.keys.length > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.keys.length && this.above(l, m)) m = l;
        if (r < this.keys.length && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

const KEY = 1 << 21; // ids stay below 2^21, so a pair packs into one exact double

export function trainBpe(counts: ReadonlyMap<string, number>, opts: BpeTrainOptions): BpeModel {
  if (opts.firstId + opts.capacity > KEY) throw new Error(`vocabulary too large (max ${KEY})`);
  // leave at least half the capacity for merges, but never drop below the printable ASCII
  const chars = chooseAlphabet(
    counts,
    opts.characterCoverage,
    Math.max(Math.floor(opts.capacity / 2), Math.min(opts.capacity, 128)),
  );
  const charId = new Map<string, number>();
  chars.forEach((c, i) => {
    charId.set(c, opts.firstId + i);
  });

  // words as symbol-id arrays; -1 marks a character left to byte fallback (no pair spans it)
  const words: Int32Array[] = [];
  const lens: number[] = [];
  const freq: number[] = [];
  for (const [piece, c] of counts) {
    const syms: number[] = [];
    for (const ch of piece) {
      const s = symbolOf(ch.codePointAt(0)!);
      syms.push(s === undefined ? -1 : (charId.get(s) ?? -1));
    }
    if (syms.length < 2) continue;
    words.push(Int32Array.from(syms));
    lens.push(syms.length);
    freq.push(c);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  for (let w = 0; w < words.length; w++) {
    const s = words[w]!;
    for (let i = 0; i + 1 < lens[w]!; i++) {
      if (s[i]! < 0 || s[i + 1]! < 0) continue;
      const k = s[i]! * KEY + s[i + 1]!;
      pairCount.set(k, (pairCount.get(k) ?? 0) + freq[w]!);
      const list = pairWords.get(k);
      if (list === undefined) pairWords.set(k, [w]);
      else if (list[list.length - 1] !== w) list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const merges: Array<[number, number]> = [];
  const touched = new Int32Array(words.length).fill(-1);
  const delta = new Map<number, number>();
  let nextId = opts.firstId + chars.length;
  const endId = opts.firstId + opts.capacity;
  while (nextId < endId && heap.size > 0) {
    const [c, k] = heap.pop();
    const actual = pairCount.get(k) ?? 0;
    if (actual !== c) {
      if (actual > 0) heap.push(actual, k); // stale entry: re-queue at its true count
      continue;
    }
    if (c < opts.minFrequency) break;
    const a = Math.floor(k / KEY);
    const b = k % KEY;
    const m = nextId++;
    merges.push([a, b]);
    delta.clear();
    const step = merges.length;
    for (const w of pairWords.get(k) ?? []) {
      if (touched[w] === step) continue;
      touched[w] = step;
      const s = words[w]!;
      const n = lens[w]!;
      const f = freq[w]!;
      let has = false;
      for (let i = 0; i + 1 < n; i++) {
        if (s[i] === a && s[i + 1] === b) {
          has = true;
          break;
        }
      }
      if (!has) continue;
      for (let i = 0; i + 1 < n; i++) {
        if (s[i]! < 0 || s[i + 1]! < 0) continue;
        const pk = s[i]! * KEY + s[i + 1]!;
        delta.set(pk, (delta.get(pk) ?? 0) - f);
      }
      let j = 0;
      for (let i = 0; i < n; ) {
        if (i + 1 < n && s[i] === a && s[i + 1] === b) {
          s[j++] = m;
          i += 2;
        } else s[j++] = s[i++]!;
      }
      lens[w] = j;
      for (let i = 0; i + 1 < j; i++) {
        if (s[i]! < 0 || s[i + 1]! < 0) continue;
        const pk = s[i]! * KEY + s[i + 1]!;
        delta.set(pk, (delta.get(pk) ?? 0) + f);
        if (s[i] === m || s[i + 1] === m) {
          const list = pairWords.get(pk);
          if (list === undefined) pairWords.set(pk, [w]);
          else if (list[list.length - 1] !== w) list.push(w);
        }
      }
    }
    pairCount.delete(k);
    pairWords.delete(k);
    for (const [pk, d] of delta) {
      if (d === 0 || pk === k) continue;
      const now = (pairCount.get(pk) ?? 0) + d;
      if (now <= 0) {
        pairCount.delete(pk);
        pairWords.delete(pk);
      } else {
        pairCount.set(pk, now);
        if (d > 0) heap.push(now, pk);
      }
    }
  }
  return { chars, merges };
}
