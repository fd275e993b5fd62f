/** `glam prepare`: build a tokenized dataset (filter, mixture, tokenizer, shards) from a data config. */
import { CATEGORIES } from '../data/categories.js';
import { defaultDataConfig, loadDataConfig } from '../data/config.js';
import type { Manifest } from '../data/manifest.js';
import {
  type PrepareOptions,
  type PrepareProgress,
  type PrepareResult,
  prepareData,
} from '../data/prepare.js';
import { ProgressBar } from '../util/progress.js';
import { parseCommand } from './args.js';

const HELP = `usage: glam prepare [--data-config FILE] [--out DIR] [--vocab-size N] [--seed N]

Builds the training data: reads the corpora, removes exact duplicates, trains the quality
classifier and applies GLaM's keep rule to web text, trains the subword tokenizer, and writes
tokenized shards with a manifest and a validation split.

options:
  --data-config FILE  JSON data config (sources, weights, vocab_size, ...); default: the
                      bundled corpus (Gutenberg, Brown, WordNet, SpamAssassin, State of the Union,
                      nlp-corpus web sentences)
  --out DIR           output directory (default data/default); a previous dataset there is replaced
  --vocab-size N      tokenizer vocabulary size (default 4096, or the config's)
  --seed N            seed of every random choice (default 0, or the config's)
  -h, --help          this help`;

function intArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
}

/**
 * Progress on stderr: a redrawn bar on a terminal; elsewhere (logs, CI) a plain line at most
 * every few seconds and at the end of each phase.
 */
function progressReporter(): PrepareProgress & { done(): void } {
  const tty = process.stderr.isTTY === true;
  let bar: ProgressBar | undefined;
  let last = 0;
  let total = 1;
  let lastPlain = 0;
  return {
    phase(name, t) {
      if (bar && last < total) bar.update(total, 'done', true);
      if (tty && bar) process.stderr.write('\n');
      total = t;
      last = 0;
      lastPlain = performance.now();
      bar = new ProgressBar({ total: t, label: `${name.padEnd(10)} `, plainEvery: 1 });
    },
    update(done, status) {
      last = done;
      const now = performance.now();
      const end = done >= total;
      if (!tty && !end && now - lastPlain < 3000) return;
      lastPlain = now;
      bar?.update(done, status, end);
    },
    log(message) {
      if (bar) bar.log(message);
      else process.stderr.write(`${message}\n`);
    },
    done() {
      if (tty && bar) process.stderr.write('\n');
      bar = undefined;
    },
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const num = (x: number) => x.toLocaleString('en-US');

export function summary(m: Manifest): string {
  const lines: string[] = [];
  const head = ['category', 'read', 'dups', 'short', 'filtered', 'kept', 'train tok', 'valid tok', 'weight'];
  const rows: string[][] = [head];
  let trainTok = 0;
  let validTok = 0;
  for (const c of CATEGORIES) {
    const s = m.stats.categories[c];
    const tr = m.splits.train[c]?.tokens ?? 0;
    const va = m.splits.valid[c]?.tokens ?? 0;
    trainTok += tr;
    validTok += va;
    rows.push([
      c,
      num(s?.read ?? 0),
      num(s?.duplicates ?? 0),
      num(s?.short ?? 0),
      num(s?.filtered ?? 0),
      num(s?.kept ?? 0),
      num(tr),
      num(va),
      m.weights[c].toFixed(3),
    ]);
  }
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    lines.push(r.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  '));
  const dups = Object.values(m.stats.categories).reduce((s, x) => s + (x?.duplicates ?? 0), 0);
  lines.push('');
  lines.push(`duplicates removed: ${num(dups)}`);
  const f = m.stats.filter;
  lines.push(
    f.enabled
      ? `quality filter on ${f.categories.join(', ')} (pareto alpha ${f.alpha}): kept ${num(f.kept)} of ${num(f.scored)} (pass rate ${pct(f.pass_rate)})`
      : 'quality filter: not applied',
  );
  const cl = m.stats.classifier;
  if (cl) {
    lines.push(
      `classifier: held-out accuracy ${pct(cl.heldout_accuracy)} on ${num(cl.heldout_docs)} docs (train ${pct(cl.train_accuracy)} on ${num(cl.train_docs)})`,
    );
  }
  const t = m.stats.tokenizer;
  lines.push(
    `tokenizer: ${num(t.vocab_size)} ids (${t.num_chars} characters, ${num(t.merges)} merges), ${m.dtype} shards`,
  );
  lines.push(`tokens: ${num(trainTok)} train, ${num(validTok)} valid`);
  for (const n of m.notes) lines.push(`note: ${n}`);
  lines.push(`time: ${m.stats.seconds.toFixed(1)} s`);
  return lines.join('\n');
}

/** prepareData with a progress bar on stderr and the summary printed at the end (to stderr unless `toStdout`). */
export async function prepareWithProgress(
  opts: Omit<PrepareOptions, 'progress'>,
  toStdout = false,
): Promise<PrepareResult> {
  const progress = progressReporter();
  const result = await prepareData({ ...opts, progress });
  progress.done();
  const text = `${summary(result.manifest)}\ndataset: ${result.dir}\n`;
  if (toStdout) process.stdout.write(text);
  else process.stderr.write(text);
  return result;
}

export async function run(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      'data-config': { type: 'string' },
      out: { type: 'string', default: 'data/default' },
      'vocab-size': { type: 'string' },
      seed: { type: 'string' },
    },
    HELP,
  );
  if (values === undefined) return;
  const config = values['data-config'] ? loadDataConfig(values['data-config']) : defaultDataConfig();
  await prepareWithProgress(
    {
      out: values.out,
      config,
      vocabSize: intArg('vocab-size', values['vocab-size']),
      seed: intArg('seed', values.seed),
    },
    true,
  );
}
