import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { ShardWriter, TokenStream } from '../../src/data/shards.js';
import { Rng } from '../../src/util/rng.js';

test('shards: documents with EOS across several files read back exactly, little-endian on disk', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'glam-shards-'));
  try {
    mkdirSync(path.join(dir, 'train'));
    for (const dtype of ['uint16', 'uint32'] as const) {
      const w = new ShardWriter(dir, `train/${dtype}`, dtype, 1000, 64);
      const rng = new Rng(9);
      const expected: number[] = [];
      const max = dtype === 'uint16' ? 65535 : 1_000_000;
      for (let d = 0; d < 50; d++) {
        const doc = Array.from({ length: rng.int(120) }, () => 3 + rng.int(max - 3));
        w.writeDocument(doc, 2);
        expected.push(...doc, 2);
      }
      const shards = w.finish();
      assert.equal(w.documents, 50);
      assert.equal(w.totalTokens, expected.length);
      assert.equal(shards.length, Math.ceil(expected.length / 1000));
      assert.ok(shards.slice(0, -1).every((s) => s.tokens === 1000));
      const bytes = readFileSync(path.join(dir, shards[0]!.file));
      const first = dtype === 'uint16' ? bytes.readUInt16LE(0) : bytes.readUInt32LE(0);
      assert.equal(first, expected[0]);
      const s = new TokenStream(dir, shards, dtype);
      assert.equal(s.length, expected.length);
      const all = new Int32Array(expected.length);
      s.read(0, expected.length, all);
      assert.deepEqual([...all], expected);
      const win = new Int32Array(1500);
      s.read(700, 1500, win); // spans two shard boundaries
      assert.deepEqual([...win], expected.slice(700, 2200));
      const wrap = new Int32Array(10);
      s.readCyclic(expected.length - 4, 10, wrap);
      assert.deepEqual([...wrap], [...expected.slice(-4), ...expected.slice(0, 6)]);
      assert.throws(() => s.read(expected.length - 1, 2, wrap), RangeError);
      s.close();
      truncateSync(path.join(dir, shards[1]!.file), 10);
      assert.throws(
        () => new TokenStream(dir, shards, dtype),
        /truncated or replaced; run glam prepare again/,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
