import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Batch } from '../../src/model/glam.js';
import type { BatchSource } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/glam.js');

/** A synthetic book: `docs` paragraphs "<heading> i. <wordsPerDoc random words>." drawn with `seed`. */
export interface Book {
  seed: number;
  words: string;
  docs: number;
  wordsPerDoc: number;
  heading: string;
}

/** The book most CLI tests train on: 80 paragraphs of 60 words about a ship at sea. */
export const SHIP_BOOK: Book = {
  seed: 5,
  words: 'the old ship sailed across a quiet sea while sailors sang of home and distant shores',
  docs: 80,
  wordsPerDoc: 60,
  heading: 'Chapter',
};

/**
 * Writes the book (`dir/book.txt`) and a data config (`dir/data.json`: one books source, a 400-token
 * vocabulary, no quality filter); returns the config's path.
 */
export function writeBookCorpus(dir: string, book: Book): string {
  const rng = new Rng(book.seed);
  const words = book.words.split(' ');
  const docs = Array.from({ length: book.docs }, (_, i) => {
    const w = Array.from({ length: book.wordsPerDoc }, () => words[rng.int(words.length)]!);
    return `${book.heading} ${i}. ${w.join(' ')}.`;
  });
  writeFileSync(path.join(dir, 'book.txt'), docs.join('\n\n'));
  const config = path.join(dir, 'data.json');
  writeFileSync(
    config,
    JSON.stringify({
      sources: [{ path: 'book.txt', category: 'books', split: 'paragraph' }],
      vocab_size: 400,
      valid_fraction: 0.1,
      min_category_tokens: 0,
      quality: { enabled: false },
    }),
  );
  return config;
}

/** writeBookCorpus, then `glam prepare` into `out`; throws with its stderr if it fails. */
export function prepareBookDataset(dir: string, out: string, book: Book): void {
  const config = writeBookCorpus(dir, book);
  const r = spawnSync(process.execPath, [BIN, 'prepare', '--data-config', config, '--out', out], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`glam prepare failed (${r.status}): ${r.stderr}`);
}

/**
 * A deterministic in-memory batch source over a token stream with learnable
 * structure (a noisy repeating pattern), for trainer tests without a prepared corpus.
 */
export class PatternSource implements BatchSource {
  private pos = 0;
  private readonly stream: Int32Array;

  constructor(
    vocab: number,
    private readonly batch: number,
    private readonly seqLen: number,
    length = 50_000,
  ) {
    this.stream = new Int32Array(length);
    let x = 12345;
    for (let i = 0; i < length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      // Mostly the pattern (i*7 mod 23), sometimes a random token.
      this.stream[i] = x % 10 === 0 ? (x >>> 8) % vocab : ((i * 7) % 23) % vocab;
    }
  }

  private take(start: number): Batch {
    const n = this.batch * this.seqLen;
    const inputs = new Int32Array(n);
    const targets = new Int32Array(n);
    for (let b = 0; b < this.batch; b++) {
      for (let t = 0; t < this.seqLen; t++) {
        const i = (start + b * (this.seqLen + 1) + t) % (this.stream.length - 1);
        inputs[b * this.seqLen + t] = this.stream[i]!;
        targets[b * this.seqLen + t] = this.stream[i + 1]!;
      }
    }
    return { inputs, targets, batch: this.batch, seqLen: this.seqLen };
  }

  next(): Batch {
    const b = this.take(this.pos);
    this.pos += this.batch * (this.seqLen + 1);
    return b;
  }

  getState(): unknown {
    return { pos: this.pos };
  }

  setState(state: unknown): void {
    this.pos = (state as { pos: number }).pos;
  }

  validation(): Batch[] {
    return [this.take(this.stream.length / 2)];
  }
}
