/** Document sources: the bundled default corpus and user files from a data config. */
import type { DataConfig, SourceSpec } from '../config.js';
import type { DocumentSource } from '../document.js';
import { brownSource } from './brown.js';
import { fileSource } from './files.js';
import { gutenbergSource } from './gutenberg.js';
import { nlpCorpusSource } from './nlpcorpus.js';
import { sotuSource } from './sotu.js';
import { spamAssassinSource } from './spamassassin.js';
import { wordnetSource } from './wordnet.js';

export { brownCategory, cleanBrown, untagBrown } from './brown.js';
export { cleanEmailBody, type ParsedEmail, parseEmail, renderEmail } from './email.js';
export { readLines } from './files.js';
export { cleanGutenberg } from './gutenberg.js';
export { htmlToText } from './html.js';
export { groupSentences, parseSentenceFile } from './nlpcorpus.js';
export { cleanSotu } from './sotu.js';
export { emailCategory } from './spamassassin.js';
export { parseSynsetLine, renderSynset } from './wordnet.js';

export function openSource(spec: SourceSpec, cfg: DataConfig): DocumentSource {
  if (spec.kind === 'files') return fileSource(spec, cfg.max_doc_chars);
  switch (spec.name) {
    case 'gutenberg':
      return gutenbergSource();
    case 'brown':
      return brownSource();
    case 'wordnet':
      return wordnetSource();
    case 'spamassassin':
      return spamAssassinSource(cfg.min_doc_chars);
    case 'sotu':
      return sotuSource();
    case 'nlp-corpus':
      return nlpCorpusSource();
  }
}
