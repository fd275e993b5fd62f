/**
 * nlp-corpus: 100,000 English sentences gathered from mixed web sources (film reviews, forum
 * and reddit posts, TV transcripts, SMS messages, song lyrics, quiz questions, news, UN and
 * trade documents, fiction), shipped shuffled in 100 JSON files of one sentence per entry.
 * Mixed-quality text of the open web: our webpages category, the text GLaM's quality filter
 * is meant to sift. The sentences are grouped in order into short pseudo-documents, so the
 * filter scores a few sentences at a time and can keep the better ones.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { DocumentSource, RawDocument } from '../document.js';
import { DataError } from '../errors.js';
import { listFiles, packageDir, totalSize } from './packages.js';

/** Sentences per pseudo-document: short enough that documents differ in quality. */
export const SENTENCES_PER_DOC = 1;

/** The sentences of one `builds/doc-N.json` file. */
export function parseSentenceFile(file: string, bytes: Buffer): string[] {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new DataError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(raw)) throw new DataError(`${file}: expected a JSON array of sentences`);
  return raw
    .filter((s): s is string => typeof s === 'string')
    .map((s) => s.replace(/\s+/g, ' ').trim())
    .filter((s) => s.length > 0);
}

/** Consecutive sentences joined into documents of `size` sentences (the last may be shorter). */
export function groupSentences(sentences: readonly string[], size = SENTENCES_PER_DOC): string[] {
  const docs: string[] = [];
  for (let i = 0; i < sentences.length; i += size) docs.push(sentences.slice(i, i + size).join(' '));
  return docs;
}

/** `doc-7.json` sorts after `doc-10.json` as text; order the files by their number instead. */
function fileNumber(f: string): number {
  return Number(/(\d+)\.json$/.exec(f)?.[1] ?? 0);
}

export function nlpCorpusSource(): DocumentSource {
  const files = listFiles(path.join(packageDir('nlp-corpus'), 'builds'), '.json').sort(
    (a, b) => fileNumber(a) - fileNumber(b),
  );
  return {
    name: 'nlp-corpus',
    categories: ['webpages'],
    sizeHint: totalSize(files),
    async *read(): AsyncIterable<RawDocument> {
      for (const f of files) {
        const docs = groupSentences(parseSentenceFile(f, readFileSync(f)));
        for (let i = 0; i < docs.length; i++) {
          yield { text: docs[i]!, category: 'webpages', source: `nlp-corpus/${path.basename(f)}#${i}` };
        }
      }
    },
  };
}
