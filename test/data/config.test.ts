/** Data config validation and clear errors for bad corpus files. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { FileSourceSpec } from '../../src/data/config.js';
import { BUILTIN_SOURCES, loadDataConfig, parseDataConfig } from '../../src/data/config.js';
import type { RawDocument } from '../../src/data/document.js';
import { fileSource } from '../../src/data/sources/files.js';

const dir = mkdtempSync(path.join(tmpdir(), 'glam-cfg-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string | Buffer): string {
  const p = path.join(dir, name);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, content);
  return p;
}

async function readAll(spec: FileSourceSpec, maxChars = 1000): Promise<RawDocument[]> {
  const out: RawDocument[] = [];
  for await (const d of fileSource(spec, maxChars).read()) out.push(d);
  return out;
}

function specOf(raw: object): FileSourceSpec {
  const cfg = parseDataConfig({ sources: [raw] }, 'data.json', dir);
  return cfg.sources[0] as FileSourceSpec;
}

test('a config with user sources: defaults filled, paths resolved, formats guessed', () => {
  write('a.jsonl', '{"text": "one"}\n');
  write('b/x.txt', 'hello');
  const cfg = parseDataConfig(
    {
      sources: [
        { path: 'a.jsonl', category: 'news' },
        { path: 'b', category: 'books' },
      ],
      vocab_size: 1000,
      weights: { books: 1 },
    },
    'data.json',
    dir,
  );
  assert.equal(cfg.sources.length, 2);
  const [a, b] = cfg.sources as FileSourceSpec[];
  assert.equal(a!.format, 'jsonl');
  assert.equal(a!.path, path.join(dir, 'a.jsonl'));
  assert.equal(b!.format, 'text');
  assert.equal(cfg.vocab_size, 1000);
  assert.equal(cfg.weights.books, 1);
  assert.equal(cfg.weights.webpages, 0);
  assert.equal(cfg.quality.alpha, 9);
  const withDefault = parseDataConfig(
    { sources: [{ path: 'a.jsonl', category: 'news' }], include_default: true },
    'd',
    dir,
  );
  assert.equal(withDefault.sources.length, 1 + BUILTIN_SOURCES.length);
  assert.equal(parseDataConfig({}, 'd', dir).sources.length, BUILTIN_SOURCES.length);
});

test('config errors name the file and the key', () => {
  const bad = (raw: unknown, re: RegExp) => assert.throws(() => parseDataConfig(raw, 'data.json', dir), re);
  bad(
    { sources: [{ path: 'missing.txt', category: 'books' }] },
    /data\.json: sources\[0\]\.path: file or directory not found: .*missing\.txt/,
  );
  bad(
    { sources: [{ path: 'a.jsonl', category: 'blogs' }] },
    /sources\[0\]\.category: unknown category "blogs"; expected one of webpages, wikipedia/,
  );
  bad({ sources: [{ path: 'a.jsonl' }] }, /sources\[0\]\.category: missing/);
  bad(
    { sources: [{ path: 'a.jsonl', category: 'news', format: 'csv' }] },
    /sources\[0\]\.format: expected one of text, jsonl, html/,
  );
  bad(
    { sources: [{ path: 'a.jsonl', category: 'news', encodin: 'x' }] },
    /sources\[0\]\.encodin: unknown key/,
  );
  bad(
    { sources: [{ path: 'a.jsonl', category: 'news', encoding: 'klingon' }] },
    /unknown encoding "klingon"/,
  );
  bad({ weights: { books: -1 } }, /weights\.books: must be in \[0/);
  bad({ weights: { novels: 1 } }, /weights\.novels: unknown category/);
  bad({ weights: { books: 0 } }, /weights: at least one weight must be positive/);
  bad({ vocab_size: 100 }, /vocab_size: must be in \[384/);
  bad({ vocab_sise: 1000 }, /vocab_sise: unknown key/);
  bad({ quality: { positive: ['books'], negative: ['books'] } }, /both positive and negative: books/);
  bad({ sources: [] }, /no sources/);
  bad([1], /expected a JSON object/);
  write('broken.json', '{"sources": [');
  assert.throws(() => loadDataConfig(path.join(dir, 'broken.json')), /broken\.json: invalid JSON/);
  assert.throws(() => loadDataConfig(path.join(dir, 'nope.json')), /cannot read data config .*nope\.json/);
});

test('JSONL: documents per line; bad lines are reported with file and line number', async () => {
  write('good.jsonl', '{"text": "first doc"}\n\n{"text": "second\\ndoc", "id": 2}\n');
  const docs = await readAll(specOf({ path: 'good.jsonl', category: 'news' }));
  assert.deepEqual(
    docs.map((d) => d.text),
    ['first doc', 'second\ndoc'],
  );
  assert.match(docs[1]!.source, /good\.jsonl:3$/);
  write('bad.jsonl', '{"text": "ok"}\n{"text": broken}\n');
  await assert.rejects(
    readAll(specOf({ path: 'bad.jsonl', category: 'news' })),
    /bad\.jsonl:2: invalid JSON/,
  );
  write('field.jsonl', '{"text": "ok"}\n{"body": "no text"}\n');
  await assert.rejects(
    readAll(specOf({ path: 'field.jsonl', category: 'news' })),
    /field\.jsonl:2: field "text" is missing/,
  );
  write('num.jsonl', '{"body": 5}\n');
  await assert.rejects(
    readAll(specOf({ path: 'num.jsonl', category: 'news', field: 'body' })),
    /num\.jsonl:1: field "body" is not a string \(number\)/,
  );
  write('arr.jsonl', '[1, 2]\n');
  await assert.rejects(
    readAll(specOf({ path: 'arr.jsonl', category: 'news' })),
    /arr\.jsonl:1: expected a JSON object per line/,
  );
});

test('non-UTF-8 input is an error naming file, line and byte, unless an encoding is given', async () => {
  write(
    'latin1.txt',
    Buffer.concat([Buffer.from('line one\nline two\nCaf'), Buffer.from([0xe9]), Buffer.from(' noir\n')]),
  );
  await assert.rejects(
    readAll(specOf({ path: 'latin1.txt', category: 'books' })),
    /latin1\.txt:3: not valid UTF-8 \(byte 0xe9 at offset 3\); .*"encoding"/,
  );
  const docs = await readAll(specOf({ path: 'latin1.txt', category: 'books', encoding: 'latin1' }));
  assert.equal(docs[0]!.text, 'line one\nline two\nCafé noir');
});

test('text files: one document per file, per paragraph or per line; directories are walked in order', async () => {
  write('t/2.txt', 'second file\n');
  write('t/1.txt', 'para one\nstill one\n\n\npara two\n');
  write('t/skip.md', 'not read');
  const files = await readAll(specOf({ path: 't', category: 'books' }));
  assert.deepEqual(
    files.map((d) => d.text),
    ['para one\nstill one\n\n\npara two', 'second file'],
  );
  const paras = await readAll(specOf({ path: 't', category: 'books', split: 'paragraph' }));
  assert.deepEqual(
    paras.map((d) => d.text),
    ['para one\nstill one', 'para two', 'second file'],
  );
  assert.match(paras[1]!.source, /1\.txt:5$/);
  const lines = await readAll(specOf({ path: 't/1.txt', category: 'books', split: 'line' }));
  assert.equal(lines.length, 3);
  write('empty/readme.md', 'x');
  assert.throws(
    () => fileSource(specOf({ path: 'empty', category: 'books' }), 1000),
    /holds no files ending in \.txt/,
  );
  write('big.txt', Array.from({ length: 100 }, (_, i) => `paragraph ${i} ${'x'.repeat(40)}`).join('\n\n'));
  const big = await readAll(specOf({ path: 'big.txt', category: 'books' }), 500);
  assert.ok(big.length > 5, 'a big file streams as several documents');
  assert.equal(
    big.map((d) => d.text).join('\n\n'),
    Array.from({ length: 100 }, (_, i) => `paragraph ${i} ${'x'.repeat(40)}`).join('\n\n'),
  );
});
