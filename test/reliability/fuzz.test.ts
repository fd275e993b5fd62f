/**
 * Fuzzing the loaders (issue 9, "What it must show"): seeded mutations of valid safetensors,
 * config, tokenizer, tokens, manifest and data-config files, each fed to its loader. Every
 * outcome must be a successful load or an Error (not a TypeError, RangeError or stack
 * overflow) whose message names the file, in bounded time. A failure prints the case's seed
 * and mutation, so it can be replayed with FUZZ_CASE=<kind>:<seed>.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { loadDataConfig } from '../../src/data/config.js';
import { openDataset } from '../../src/data/dataset.js';
import { prepareData } from '../../src/data/prepare.js';
import { Tokenizer } from '../../src/data/tokenizer.js';
import { readTokenRows } from '../../src/infer/score.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/model/checkpoint.js';
import { type GlamConfig, parseConfig } from '../../src/model/config.js';
import { initParams } from '../../src/model/init.js';
import { readSafetensors } from '../../src/model/safetensors.js';
import { Rng } from '../../src/util/rng.js';
import { SHIP_BOOK, writeBookCorpus } from '../train/helpers.js';
import { tempRoot } from './helpers.js';

const SEED = 20_261_202;
/** Cases per kind: a fixed number, so every run checks the same cases (about 2 s in all; FUZZ_CASES=N for a longer search). */
const CASES = Number(process.env.FUZZ_CASES ?? 60);

const root = tempRoot('fuzz');
const MICRO: GlamConfig = parseConfig({
  vocab_size: 32,
  d_model: 8,
  n_layers: 2,
  n_heads: 2,
  d_head: 4,
  d_ff: 16,
  n_experts: 4,
  d_ff_expert: 8,
  max_seq_len: 16,
  rel_buckets: 8,
  rel_max_distance: 16,
});

let ckpt: string;
let dataset: string;
const originals = new Map<string, Buffer>();

before(async () => {
  ckpt = path.join(root, 'ckpt');
  saveCheckpoint(ckpt, MICRO, initParams(MICRO, 1));
  dataset = path.join(root, 'data');
  await prepareData({
    out: dataset,
    config: loadDataConfig(writeBookCorpus(root, { ...SHIP_BOOK, docs: 40, wordsPerDoc: 30 })),
  });
  originals.set('model.safetensors', readFileSync(path.join(ckpt, 'model.safetensors')));
  originals.set('config.json', readFileSync(path.join(ckpt, 'config.json')));
  originals.set('tokenizer.json', readFileSync(path.join(dataset, 'tokenizer.json')));
  originals.set('manifest.json', readFileSync(path.join(dataset, 'manifest.json')));
  originals.set(
    'tokens.json',
    Buffer.from(
      JSON.stringify([
        [1, 2, 3, 4, 5],
        [6, 7, 8],
        [9, 10, 11, 12],
      ]),
    ),
  );
  originals.set('data.json', readFileSync(path.join(root, 'data.json')));
});

after(() => rmSync(root, { recursive: true, force: true }));

// ---------------------------------------------------------------------------
// Mutations

/** Values that break loaders that trust their input. */
function hostileValue(rng: Rng): unknown {
  const deep = (n: number): unknown => {
    let v: unknown = [];
    for (let i = 0; i < n; i++) v = [v];
    return v;
  };
  const choices: (() => unknown)[] = [
    () => null,
    () => -1,
    () => 0,
    () => 2 ** 53 + 2,
    () => 1e308,
    () => -0.5,
    () => 3.7,
    () => '',
    () => '../../../etc/passwd',
    () => 'x'.repeat(1 << 16),
    () => [],
    () => {},
    () => [null],
    () => ({ a: 1 }),
    () => true,
    () => deep(50_000),
    () => Array.from({ length: 1000 }, (_, i) => i),
  ];
  return choices[rng.int(choices.length)]!();
}

/** Every [parent, key] in a JSON value, breadth-first, at most `max` of them. */
function slots(v: unknown, max = 5000): [Record<string, unknown> | unknown[], string | number][] {
  const out: [Record<string, unknown> | unknown[], string | number][] = [];
  const queue: unknown[] = [v];
  while (queue.length > 0 && out.length < max) {
    const x = queue.shift();
    if (Array.isArray(x)) {
      x.forEach((item, i) => {
        out.push([x, i]);
        queue.push(item);
      });
    } else if (typeof x === 'object' && x !== null) {
      for (const [k, item] of Object.entries(x)) {
        out.push([x as Record<string, unknown>, k]);
        queue.push(item);
      }
    }
  }
  return out;
}

/** A JSON-aware mutation: replace, delete or add a value somewhere in the document. */
function mutateJson(text: string, rng: Rng): { text: string; what: string } {
  const doc = JSON.parse(text) as unknown;
  const all = slots(doc);
  const n = 1 + rng.int(3);
  const what: string[] = [];
  for (let i = 0; i < n && all.length > 0; i++) {
    const [parent, key] = all[rng.int(all.length)]!;
    const op = rng.int(3);
    if (op === 0 && !Array.isArray(parent)) {
      delete (parent as Record<string, unknown>)[key as string];
      what.push(`delete ${key}`);
    } else if (op === 1 && !Array.isArray(parent)) {
      (parent as Record<string, unknown>)[`k${rng.int(100)}`] = hostileValue(rng);
      what.push('add key');
    } else {
      const v = hostileValue(rng);
      (parent as Record<string | number, unknown>)[key] = v;
      what.push(`set ${key}`);
    }
  }
  let out: string;
  try {
    out = JSON.stringify(doc);
  } catch {
    out = text; // a value too deep to serialise: leave the document as it was
  }
  // Sometimes a number JSON cannot hold exactly.
  if (rng.int(4) === 0) out = out.replace(/\b\d+\b/, rng.int(2) === 0 ? '1e400' : '-1e400');
  return { text: out, what: `json: ${what.join(', ')}` };
}

/** A byte-level mutation: flips, truncation, insertion, a zeroed range. */
function mutateBytes(buf: Buffer, rng: Rng): { bytes: Buffer; what: string } {
  const b = Buffer.from(buf);
  switch (rng.int(5)) {
    case 0: {
      const n = 1 + rng.int(8);
      for (let i = 0; i < n; i++) b[rng.int(b.length)] = rng.int(256);
      return { bytes: b, what: `flip ${n} bytes` };
    }
    case 1: {
      const at = rng.int(b.length);
      return { bytes: b.subarray(0, at), what: `truncate at ${at}` };
    }
    case 2: {
      const at = rng.int(b.length);
      const junk = Buffer.from(Array.from({ length: 1 + rng.int(64) }, () => rng.int(256)));
      return {
        bytes: Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]),
        what: `insert ${junk.length} at ${at}`,
      };
    }
    case 3: {
      const at = rng.int(b.length);
      b.fill(0, at, Math.min(b.length, at + 1 + rng.int(256)));
      return { bytes: b, what: `zero from ${at}` };
    }
    default: {
      // The first 8 bytes of a safetensors file are its header length.
      const v = [0n, 1n, 7n, 2n ** 63n, 2n ** 64n - 1n, BigInt(rng.int(1 << 20))][rng.int(6)]!;
      b.writeBigUInt64LE(v, 0);
      return { bytes: b, what: `header length ${v}` };
    }
  }
}

/** A mutation of a safetensors file's header JSON, keeping its framing valid. */
function mutateSafetensorsHeader(buf: Buffer, rng: Rng): { bytes: Buffer; what: string } {
  const n = Number(buf.readBigUInt64LE(0));
  const header = buf.subarray(8, 8 + n).toString('utf8');
  const { text, what } = mutateJson(header, rng);
  const h = Buffer.from(text);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return { bytes: Buffer.concat([len, h, buf.subarray(8 + n)]), what: `header ${what}` };
}

// ---------------------------------------------------------------------------
// The targets

interface Target {
  /** The file that is mutated and that errors must name (or, for directories, the directory). */
  file: () => string;
  original: string;
  mutate: (buf: Buffer, rng: Rng) => { bytes: Buffer; what: string };
  load: () => unknown;
}

const jsonOrBytes =
  (name: string) =>
  (buf: Buffer, rng: Rng): { bytes: Buffer; what: string } => {
    if (rng.int(3) > 0) {
      const { text, what } = mutateJson(buf.toString('utf8'), rng);
      return { bytes: Buffer.from(text), what };
    }
    const m = mutateBytes(buf, rng);
    return { bytes: m.bytes, what: `${name}: ${m.what}` };
  };

const TARGETS: Record<string, Target> = {
  safetensors: {
    file: () => path.join(ckpt, 'model.safetensors'),
    original: 'model.safetensors',
    mutate: (buf, rng) => (rng.int(2) === 0 ? mutateSafetensorsHeader(buf, rng) : mutateBytes(buf, rng)),
    load: () => {
      readSafetensors(path.join(ckpt, 'model.safetensors'));
      return loadCheckpoint(ckpt);
    },
  },
  config: {
    file: () => path.join(ckpt, 'config.json'),
    original: 'config.json',
    mutate: jsonOrBytes('config'),
    load: () => loadCheckpoint(ckpt),
  },
  tokenizer: {
    file: () => path.join(dataset, 'tokenizer.json'),
    original: 'tokenizer.json',
    mutate: jsonOrBytes('tokenizer'),
    load: () => Tokenizer.load(path.join(dataset, 'tokenizer.json')).encode('The old ship.'),
  },
  tokens: {
    file: () => path.join(root, 'tokens.json'),
    original: 'tokens.json',
    mutate: jsonOrBytes('tokens'),
    load: () => readTokenRows(path.join(root, 'tokens.json'), MICRO),
  },
  manifest: {
    file: () => path.join(dataset, 'manifest.json'),
    original: 'manifest.json',
    mutate: jsonOrBytes('manifest'),
    load: () => {
      const ds = openDataset(dataset);
      try {
        const pos = ds.initialPosition(0);
        ds.nextBatch(pos, 2, 8);
        for (const _ of ds.validationBatches(2, 8, { maxBatches: 2 })) {
        }
      } finally {
        ds.close();
      }
    },
  },
  'data-config': {
    file: () => path.join(root, 'data.json'),
    original: 'data.json',
    mutate: jsonOrBytes('data config'),
    load: () => loadDataConfig(path.join(root, 'data.json')),
  },
};

/** One case: mutate, load, check the outcome. Returns a failure description or undefined. */
function runCase(kind: string, seed: number): { failure?: string; ms: number; loaded: boolean } {
  const t = TARGETS[kind]!;
  const rng = new Rng(seed);
  const { bytes, what } = t.mutate(originals.get(t.original)!, rng);
  const file = t.file();
  writeFileSync(file, bytes);
  const t0 = performance.now();
  let failure: string | undefined;
  let loaded = false;
  try {
    t.load();
    loaded = true;
  } catch (err) {
    const e = err as Error;
    const where = `${kind}:${seed} (${what})`;
    if (!(e instanceof Error)) failure = `${where}: threw a non-Error ${String(e)}`;
    else if (e.name !== 'Error' && e.name !== 'DataError')
      failure = `${where}: ${e.name}: ${e.message.slice(0, 300)}\n${e.stack?.split('\n').slice(1, 4).join('\n')}`;
    // A checkpoint's or dataset's files are checked against each other: the error may name
    // any file of the directory the mutated file is in.
    else if (!e.message.includes(path.dirname(file)))
      failure = `${where}: the error names no file of ${path.dirname(file)}: ${e.message.slice(0, 300)}`;
    else if (e.message.length > 2000) failure = `${where}: a ${e.message.length}-character message`;
  } finally {
    writeFileSync(file, originals.get(t.original)!);
  }
  return { failure, ms: performance.now() - t0, loaded };
}

test('fuzz: mutated files fed to every loader fail cleanly, naming the file, in bounded time', (t) => {
  const only = process.env.FUZZ_CASE;
  if (only !== undefined) {
    const [kind, seed] = only.split(':');
    const r = runCase(kind!, Number(seed));
    assert.equal(r.failure, undefined, r.failure);
    return;
  }
  const failures: string[] = [];
  const start = performance.now();
  let cases = 0;
  let slowest = { ms: 0, id: '' };
  const kinds = Object.keys(TARGETS);
  const refused = new Map(kinds.map((k) => [k, 0]));
  for (let i = 0; i < CASES; i++) {
    for (const kind of kinds) {
      const seed = SEED + i;
      const r = runCase(kind, seed);
      cases++;
      if (r.failure !== undefined) failures.push(r.failure);
      if (!r.loaded) refused.set(kind, refused.get(kind)! + 1);
      if (r.ms > slowest.ms) slowest = { ms: r.ms, id: `${kind}:${seed}` };
    }
  }
  t.diagnostic(
    `${cases} cases in ${(performance.now() - start).toFixed(0)} ms; refused per kind: ${[...refused].map(([k, n]) => `${k} ${n}`).join(', ')}; slowest ${slowest.id} ${slowest.ms.toFixed(0)} ms`,
  );
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${cases} cases failed`);
  // A hang guard, not a benchmark: no single load may take seconds.
  assert.ok(slowest.ms < 10_000, `case ${slowest.id} took ${slowest.ms.toFixed(0)} ms`);
});
