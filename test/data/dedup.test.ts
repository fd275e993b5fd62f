import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contentHash, Deduper, normalizeForDedup } from '../../src/data/dedup.js';

test('exact dedup on normalised text: case, whitespace and Unicode forms do not matter', () => {
  const d = new Deduper();
  assert.equal(d.add('Hello  World\n'), true);
  assert.equal(d.add('hello world'), false);
  assert.equal(d.add('HELLO\tWORLD'), false);
  assert.equal(d.add('ﬁne'), true); // NFKC folds the ligature ...
  assert.equal(d.add('fine'), false); // ... so this is the same text
  assert.equal(d.add('hello world!'), true);
  assert.equal(d.duplicates, 3);
  assert.equal(d.size, 3);
  assert.equal(normalizeForDedup('  A\u00a0B  '), 'a b');
  assert.notEqual(contentHash('a'), contentHash('b'));
});
