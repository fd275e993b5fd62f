/** The subword tokenizer: lossless on any string, deterministic, validated on load. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { countPieces, MAX_PIECE, pretokenize } from '../../src/data/pretokenize.js';
import { Tokenizer } from '../../src/data/tokenizer.js';
import { Rng } from '../../src/util/rng.js';

const corpus = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away!',
  'It was the best of times, it was the worst of times, it was the age of wisdom.',
  'Call me Ishmael. Some years ago, never mind how long precisely, having little money.',
  'Numbers like 1234 and 3.14159 appear, as do e-mail addresses: someone@example.com.',
  '    indented code();\n\tand tabs\r\nand windows line ends\n\n\nand blank lines',
  'Café, naïve, façade, Straße, 東京, Москва, 🎉 emoji.',
].join('\n\n');

function train(vocabSize = 512): Tokenizer {
  const counts = new Map<string, number>();
  for (let i = 0; i < 20; i++) countPieces(corpus, counts);
  return Tokenizer.train(counts, { vocabSize });
}

const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8');

function randomString(rng: Rng, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) {
    const r = rng.uniform();
    if (r < 0.3) s += 'abc de f▁ghi  \n\t.'[rng.int(18)];
    else if (r < 0.5)
      s += String.fromCharCode(rng.int(0x80)); // ASCII incl. control chars
    else if (r < 0.7)
      s += String.fromCharCode(0x80 + rng.int(0x800)); // 2-byte range
    else if (r < 0.8)
      s += String.fromCharCode(0xd800 + rng.int(0x800)); // a surrogate, often unpaired
    else if (r < 0.9)
      s += String.fromCodePoint(0x10000 + rng.int(0x100000)); // astral
    else s += String.fromCharCode(rng.int(0x10000));
  }
  return s;
}

test('pretokenize is a partition of the input and bounds piece length', () => {
  const rng = new Rng(11);
  for (let i = 0; i < 200; i++) {
    const s = randomString(rng, rng.int(200));
    const pieces = pretokenize(s);
    assert.equal(pieces.join(''), s);
    for (const p of pieces) assert.ok(p.length <= MAX_PIECE);
  }
  assert.deepEqual(pretokenize('Hello,  world!\n\nok'), ['Hello', ',', ' ', ' world', '!', '\n\n', 'ok']);
  assert.equal(pretokenize('x'.repeat(200)).length, 4);
});

test('round trip: decode(encode(s)) is s (as UTF-8 holds it) for random and adversarial strings', () => {
  const tok = train();
  const rng = new Rng(3);
  for (let i = 0; i < 500; i++) {
    const s = randomString(rng, rng.int(120));
    assert.equal(tok.decode(tok.encode(s)), wellFormed(s), JSON.stringify(s));
  }
  const adversarial = [
    '',
    ' ',
    '   leading and trailing   ',
    '▁literal ▁ lower one eighth block ▁▁',
    '<eos><bos><pad><unk><0x41>',
    '\u0000\u0001\u001f\u007f',
    '\r\n\r\n\t\t\u000b\u000c',
    '👩‍👩‍👧‍👦 family, 🇯🇵 flag, e\u0301 combining',
    '\ud800 lone high, lone low \udfff, pair \ud83d\ude00',
    '\ufeffBOM and \uffff noncharacter and \u{10ffff}',
    'a'.repeat(1000),
    '東京都の天気は晴れです。中文测试。한국어 텍스트.',
    `${'word '.repeat(50)}\n`,
  ];
  for (const s of adversarial) assert.equal(tok.decode(tok.encode(s)), wellFormed(s), JSON.stringify(s));
  const ids = tok.encode('hi', { bos: true, eos: true });
  assert.equal(ids[0], tok.bosId);
  assert.equal(ids.at(-1), tok.eosId);
  assert.equal(tok.decode(ids), 'hi');
  for (const id of tok.encode(randomString(rng, 300))) assert.ok(id >= 4 && id < tok.vocabSize);
});

test('training and encoding are deterministic; merges compress common words', () => {
  const a = train();
  const b = train();
  assert.deepEqual(a.toJSON(), b.toJSON());
  assert.equal(a.vocabSize, 512);
  assert.equal(a.pieces.length, 512);
  const text = 'the fox and the dog';
  assert.deepEqual(a.encode(text), b.encode(text));
  assert.ok(a.encode(text).length < Buffer.byteLength(text) / 2);
  assert.ok(a.pieces.includes('▁the'));
  // the cache gives the same answer as a cold encoder
  assert.deepEqual(a.encode(`${text} ${text}`), train().encode(`${text} ${text}`));
});

test('save and load give the same tokenizer; a corrupted file is rejected with a clear error', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'glam-tok-'));
  try {
    const tok = train();
    const file = path.join(dir, 'tokenizer.json');
    tok.save(file);
    const back = Tokenizer.load(file);
    assert.deepEqual(back.toJSON(), tok.toJSON());
    assert.deepEqual(back.encode(corpus), tok.encode(corpus));
    const json = JSON.parse(readFileSync(file, 'utf8'));
    const m = json.merges.length;
    const bad = structuredClone(json);
    bad.pieces[260 + json.num_chars + m - 1] = 'xyz';
    writeFileSync(file, JSON.stringify(bad));
    assert.throws(() => Tokenizer.load(file), /tokenizer\.json: piece \d+ must equal the concatenation/);
    assert.throws(() => Tokenizer.fromJSON({ ...json, format: 'other/1' }), /unsupported format/);
    assert.throws(() => Tokenizer.fromJSON({ ...json, vocab_size: 100 }), /invalid vocab_size/);
    assert.throws(
      () => Tokenizer.fromJSON({ ...json, merges: [[5000, 261]] }),
      /merge 0 must be two earlier learned ids/,
    );
    assert.throws(() => tok.decode([tok.vocabSize]), /out of range/);
    assert.throws(() => Tokenizer.train(new Map(), { vocabSize: 100 }), /vocab_size must be/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tiny training set pads the vocabulary with unused ids', () => {
  const counts = new Map([['ab', 3]]);
  const tok = Tokenizer.train(counts, { vocabSize: 400 });
  assert.equal(tok.vocabSize, 400);
  assert.equal(tok.pieces[399], `<unused_${399 - 260 - tok.numChars - tok.merges.length}>`);
  assert.equal(tok.decode(tok.encode('ab ba')), 'ab ba');
});
