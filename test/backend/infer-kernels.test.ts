/**
 * The inference kernels: pagedAttention (attention of query rows over a paged key/value cache with the
 * T5 relative bias) and topkRows, native against the TypeScript reference, plus the property the
 * serving engine relies on: a row's attention is bitwise the same whatever else is in the call and
 * whatever the thread count.
 *
 * pagedAttention bound per output element (u = 2^-24, reference in float64):
 *   2·(2·Δs + (n + 8)·u)·Σ_j p_j·|v_j|,  Δs = max_j ((dHead + 2)·u·scale·Σ_t |q_t·k_jt| + u·|bias_j|)
 * a score error Δs moves each normalised probability by at most 2·Δs relatively (numerator and sum),
 * the exp and the n-term sums add (n + 8)·u; the factor 2 is headroom.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mat } from '../../src/backend/mat.js';
import type { Kernels } from '../../src/backend/ops.js';
import { referenceKernels } from '../../src/backend/reference.js';
import { relativeBucket } from '../../src/model/layers/attention.js';
import { assertClose, native, nativeMissing, randomArray, U } from './helpers.js';

interface Case {
  heads: number;
  dHead: number;
  blockSize: number;
  maxBlocks: number;
  blocks: number;
  /** Per sequence, its block ids (a permutation, with some blocks shared between sequences). */
  tables: number[][];
  /** Query rows: [sequence, position]. */
  rows: [number, number][];
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  relBias: Float32Array;
  bucketOf: Int32Array;
}

function makeCase(
  seed: number,
  heads: number,
  dHead: number,
  blockSize: number,
  rows: [number, number][],
): Case {
  const maxLen = Math.max(...rows.map(([, p]) => p)) + 1;
  const maxBlocks = Math.ceil(maxLen / blockSize);
  const sequences = Math.max(...rows.map(([s]) => s)) + 1;
  const blocks = sequences * maxBlocks + 3;
  // Blocks handed out in a scrambled order; sequence 1 shares its first block with sequence 0.
  const order = Array.from({ length: blocks }, (_, i) => (i * 7 + 3) % blocks);
  const tables: number[][] = [];
  for (let s = 0; s < sequences; s++) tables.push(order.slice(s * maxBlocks, (s + 1) * maxBlocks));
  if (sequences > 1) tables[1]![0] = tables[0]![0]!;
  const width = heads * dHead;
  const buckets = 8;
  return {
    heads,
    dHead,
    blockSize,
    maxBlocks,
    blocks,
    tables,
    rows,
    q: randomArray(rows.length * width, seed, -2, 2),
    k: randomArray(blocks * blockSize * width, seed + 1, -2, 2),
    v: randomArray(blocks * blockSize * width, seed + 2),
    relBias: randomArray(buckets * heads, seed + 3, -1, 1),
    bucketOf: Int32Array.from({ length: maxLen }, (_, n) => relativeBucket(n, buckets, 20)),
  };
}

function run(kern: Kernels, c: Case, rowSubset?: number[]): Float32Array {
  const picked = rowSubset ?? c.rows.map((_, i) => i);
  const width = c.heads * c.dHead;
  const q = new Float32Array(picked.length * width);
  picked.forEach((r, i) => {
    q.set(c.q.subarray(r * width, (r + 1) * width), i * width);
  });
  const table = Int32Array.from(c.tables.flat());
  const out = new Float32Array(picked.length * width);
  const slots = c.blocks * c.blockSize;
  kern.pagedAttention(
    mat(q, picked.length, width),
    mat(c.k, slots, width),
    mat(c.v, slots, width),
    table,
    c.maxBlocks,
    c.blockSize,
    Int32Array.from(picked, (r) => c.rows[r]![0]),
    Int32Array.from(picked, (r) => c.rows[r]![1]),
    mat(c.relBias, c.relBias.length / c.heads, c.heads),
    c.bucketOf,
    1 / Math.sqrt(c.dHead),
    mat(out, picked.length, width),
  );
  return out;
}

/** The error bound of the file header, per output element. */
function bound(c: Case): (i: number) => number {
  const width = c.heads * c.dHead;
  const scale = 1 / Math.sqrt(c.dHead);
  const bounds = new Float64Array(c.rows.length * width);
  c.rows.forEach(([s, pos], r) => {
    for (let h = 0; h < c.heads; h++) {
      const sc: number[] = [];
      let ds = 0;
      for (let j = 0; j <= pos; j++) {
        const slot = c.tables[s]![Math.floor(j / c.blockSize)]! * c.blockSize + (j % c.blockSize);
        let dot = 0;
        let mag = 0;
        for (let t = 0; t < c.dHead; t++) {
          const p = c.q[r * width + h * c.dHead + t]! * c.k[slot * width + h * c.dHead + t]!;
          dot += p;
          mag += Math.abs(p);
        }
        const bias = c.relBias[c.bucketOf[pos - j]! * c.heads + h]!;
        sc.push(scale * dot + bias);
        ds = Math.max(ds, (c.dHead + 2) * U * scale * mag + U * Math.abs(bias));
      }
      const mx = Math.max(...sc);
      const e = sc.map((x) => Math.exp(x - mx));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let t = 0; t < c.dHead; t++) {
        let mass = 0;
        for (let j = 0; j <= pos; j++) {
          const slot = c.tables[s]![Math.floor(j / c.blockSize)]! * c.blockSize + (j % c.blockSize);
          mass += (e[j]! / sum) * Math.abs(c.v[slot * width + h * c.dHead + t]!);
        }
        bounds[r * width + h * c.dHead + t] = 2 * (2 * ds + (pos + 1 + 8) * U) * mass;
      }
    }
  });
  return (i) => bounds[i]!;
}

const CASES: [string, () => Case][] = [
  ['one row at position 0', () => makeCase(1, 1, 8, 4, [[0, 0]])],
  [
    'decode rows of three sequences',
    () =>
      makeCase(2, 4, 16, 16, [
        [0, 40],
        [1, 7],
        [2, 99],
      ]),
  ],
  [
    'a prefill chunk (consecutive positions) beside a decode row',
    () =>
      makeCase(3, 2, 32, 8, [
        ...Array.from({ length: 21 }, (_, i): [number, number] => [0, 10 + i]),
        [1, 64],
      ]),
  ],
  [
    'long context, odd head width',
    () =>
      makeCase(4, 3, 33, 16, [
        [0, 700],
        [1, 300],
      ]),
  ],
  [
    // More heads than one attention unit takes (64): a row's heads are cut into groups.
    'many narrow heads',
    () =>
      makeCase(5, 100, 4, 8, [
        [0, 30],
        [1, 5],
        [2, 17],
      ]),
  ],
];

describe('pagedAttention', () => {
  test('reference agrees with a direct softmax over the unpaged sequence', () => {
    const c = makeCase(5, 2, 4, 2, [[0, 5]]);
    const out = run(referenceKernels, c);
    const width = c.heads * c.dHead;
    for (let h = 0; h < c.heads; h++) {
      const scores: number[] = [];
      const vals: number[][] = [];
      for (let j = 0; j <= 5; j++) {
        const slot = c.tables[0]![Math.floor(j / 2)]! * 2 + (j % 2);
        let d = 0;
        for (let t = 0; t < c.dHead; t++) d += c.q[h * c.dHead + t]! * c.k[slot * width + h * c.dHead + t]!;
        scores.push(d / 2 + c.relBias[c.bucketOf[5 - j]! * c.heads + h]!);
        vals.push(Array.from(c.v.subarray(slot * width + h * c.dHead, slot * width + (h + 1) * c.dHead)));
      }
      const z = scores.reduce((a, s) => a + Math.exp(s), 0);
      for (let t = 0; t < c.dHead; t++) {
        const want = scores.reduce((a, s, j) => a + (Math.exp(s) / z) * vals[j]![t]!, 0);
        assert.ok(Math.abs(out[h * c.dHead + t]! - want) < 1e-6, `head ${h} column ${t}`);
      }
    }
  });

  for (const [name, make] of CASES) {
    test(`native matches the reference: ${name}`, { skip: nativeMissing }, () => {
      const c = make();
      assertClose(name, run(native!, c), run(referenceKernels, c), bound(c));
    });
  }

  test('a row is bitwise the same alone, in any batch and on 1 or 2 threads', { skip: nativeMissing }, () => {
    const c = CASES[2]![1]();
    const threads = native!.getThreads();
    try {
      const all = run(native!, c);
      const width = c.heads * c.dHead;
      for (const t of [1, 2]) {
        native!.setThreads(t);
        for (const r of [0, 7, 21]) {
          const alone = run(native!, c, [r]);
          assert.deepEqual(alone, all.subarray(r * width, (r + 1) * width), `row ${r} alone, ${t} thread(s)`);
          const shuffled = run(native!, c, [21, r, 3]);
          assert.deepEqual(shuffled.subarray(width, 2 * width), alone, `row ${r} second of three`);
        }
      }
    } finally {
      native!.setThreads(threads);
    }
  });

  for (const [label, kern] of [
    ['reference', referenceKernels],
    ['native', native],
  ] as const) {
    test(`bad indices are refused with a message (${label})`, {
      skip: kern === undefined && nativeMissing,
    }, () => {
      const c = makeCase(6, 1, 4, 4, [[0, 9]]);
      const call =
        (over: Partial<{ table: Int32Array; pos: number; seq: number; bucketOf: Int32Array }>) => () =>
          kern!.pagedAttention(
            mat(c.q, 1, 4),
            mat(c.k, c.blocks * 4, 4),
            mat(c.v, c.blocks * 4, 4),
            over.table ?? Int32Array.from(c.tables.flat()),
            c.maxBlocks,
            c.blockSize,
            Int32Array.of(over.seq ?? 0),
            Int32Array.of(over.pos ?? 9),
            mat(c.relBias, 8, 1),
            over.bucketOf ?? c.bucketOf,
            0.5,
            mat(new Float32Array(4), 1, 4),
          );
      assert.throws(call({ pos: 10 }), /^Error: pagedAttention: rowPos\[0\]=10 outside \[0, 10\)/);
      assert.throws(call({ seq: 1 }), /^Error: pagedAttention: rowSeq\[0\]=1 outside \[0, 1\)$/);
      assert.throws(
        call({ table: Int32Array.of(0, 99, 1) }),
        /^Error: pagedAttention: blockTable\[1\]=99 outside the cache's \[0, \d+\) blocks$/,
      );
      assert.throws(
        call({ bucketOf: Int32Array.from({ length: 10 }, () => 8) }),
        /^Error: pagedAttention: bucket 8 at 0 outside \[0, 8\)$/,
      );
    });
  }
});

describe('topkRows', () => {
  const rows = 7;
  const cols = 300;
  const x = randomArray(rows * cols, 11);
  // Ties (equal values at several indices), infinities and a NaN.
  for (let j = 0; j < cols; j += 7) x[j] = 0.5;
  x[cols + 3] = Number.POSITIVE_INFINITY;
  x[cols + 4] = Number.NaN;
  x[2 * cols + 9] = Number.NEGATIVE_INFINITY;
  x.fill(0.25, 3 * cols, 4 * cols);
  // NaN up front, so the best k so far end in NaN while later blocks of 16 hold numbers (every number
  // must enter); and rising values, so that every block holds a new best.
  x.fill(Number.NaN, 5 * cols, 6 * cols);
  for (const j of [40, 41, 130, 200, 299]) x[5 * cols + j] = j / 100;
  for (let j = 0; j < cols; j++) x[6 * cols + j] = j % 17 === 0 ? 1 : j / cols;

  function expected(k: number): { idx: number[]; val: number[] } {
    const idx: number[] = [];
    const val: number[] = [];
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * cols, (r + 1) * cols), (v, j) => ({ v, j }));
      row.sort((a, b) => {
        const na = Number.isNaN(a.v);
        const nb = Number.isNaN(b.v);
        if (na || nb) return na === nb ? a.j - b.j : na ? 1 : -1;
        return a.v === b.v ? a.j - b.j : b.v > a.v ? 1 : -1;
      });
      for (const e of row.slice(0, k)) {
        idx.push(e.j);
        val.push(e.v);
      }
    }
    return { idx, val };
  }

  for (const k of [0, 1, 5, 64, 65, 300]) {
    for (const [label, kern] of [
      ['reference', referenceKernels],
      ['native', native],
    ] as const) {
      test(`k = ${k} (${label}): the k largest, descending, ties by index, NaN last`, {
        skip: kern === undefined && nativeMissing,
      }, () => {
        const idx = new Int32Array(rows * k);
        const val = new Float32Array(rows * k);
        kern!.topkRows(mat(x, rows, cols), k, idx, val);
        const e = expected(k);
        assert.deepEqual(Array.from(idx), e.idx);
        assert.deepEqual(
          Array.from(val),
          e.val.map((v) => Math.fround(v)),
        );
      });
    }
  }

  test('k above cols is refused', () => {
    assert.throws(
      () => referenceKernels.topkRows(mat(x, rows, cols), cols + 1, new Int32Array(0), new Float32Array(0)),
      /topkRows: k=301 exceeds x.cols=300/,
    );
  });
});
