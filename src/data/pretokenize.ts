/**
 * Pre-tokenization: split text into word-like pieces before subword merges, losslessly
 * (the pieces concatenate back to the input). Letters (with combining marks), digit groups
 * of up to three, and punctuation runs each take one optional leading space, as
 * SentencePiece's ▁-prefixed pieces do; other whitespace runs stand alone, so newlines and
 * indentation survive exactly. Pieces longer than MAX_PIECE code units are cut, which
 * bounds the cost of merging (a base64 blob is not one word).
 */
export const PRETOKENIZER = 'glam-v1';
export const MAX_PIECE = 64;

// A whitespace run keeps its last space for the next word only when that space directly
// precedes it ("  x" -> " ", " x"; "\n\n x" -> "\n\n", " x"; "\n\nx" -> "\n\n", "x").
const PIECE = / ?[\p{L}\p{M}]+| ?\p{N}{1,3}| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?= \S)|\s+/gu;

/** Call `fn` for each piece of `text`, in order. */
export function forEachPiece(text: string, fn: (piece: string) => void): void {
  PIECE.lastIndex = 0;
  for (let m = PIECE.exec(text); m !== null; m = PIECE.exec(text)) {
    const p = m[0];
    if (p.length <= MAX_PIECE) fn(p);
    else for (const part of cutLong(p)) fn(part);
  }
}

export function pretokenize(text: string): string[] {
  const out: string[] = [];
  forEachPiece(text, (p) => out.push(p));
  return out;
}

function cutLong(p: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < p.length) {
    let end = Math.min(p.length, i + MAX_PIECE);
    const c = p.charCodeAt(end - 1);
    if (end < p.length && c >= 0xd800 && c <= 0xdbff) end--; // keep a surrogate pair together
    out.push(p.slice(i, end));
    i = end;
  }
  return out;
}

/** Add the pieces of `text` to a piece → count table. */
export function countPieces(text: string, counts: Map<string, number>): void {
  forEachPiece(text, (p) => counts.set(p, (counts.get(p) ?? 0) + 1));
}

/**
 * Keep a piece-count table under `maxSize` entries by dropping the rarest pieces
 * (count 1, then 2, ...): bounded memory on any corpus, deterministic for a given input.
 */
export function prunePieceCounts(counts: Map<string, number>, maxSize: number): void {
  for (let floor = 1; counts.size > maxSize; floor++) {
    for (const [k, c] of counts) if (c <= floor) counts.delete(k);
  }
}
