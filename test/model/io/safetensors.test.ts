import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  decodeSafetensors,
  encodeSafetensors,
  halfToFloat,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
} from '../../../src/model/safetensors.js';
import { Tensor } from '../../../src/tensor/tensor.js';
import { fixture, jsonFloat, tempDir } from './helpers.js';

interface ExpectedFile {
  metadata: Record<string, string>;
  tensors: Record<string, { dtype: string; shape: number[]; values: (number | string)[] }>;
  non_float: string[];
}

function expected(name: string): ExpectedFile {
  return JSON.parse(readFileSync(fixture('safetensors', `${name}.expected.json`), 'utf8')) as ExpectedFile;
}

/** Build a safetensors file by hand from a header object (or raw header text) and data bytes. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const text =
    header instanceof Uint8Array
      ? Buffer.from(header)
      : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const out = Buffer.alloc(8 + text.length + data.length);
  out.writeBigUInt64LE(lengthOverride ?? BigInt(text.length), 0);
  text.copy(out, 8);
  out.set(data, 8 + text.length);
  return out;
}

function sampleTensors(): Map<string, Tensor> {
  return new Map([
    ['a', Tensor.from([1, -2, 3.5, Number.NaN, -0, 1e-45, Number.POSITIVE_INFINITY, 3.4e38], [2, 4])],
    ['b.weight', Tensor.from([0.1, 0.2, 0.3], [3])],
    ['scalar', Tensor.from([7], [])],
    ['empty', Tensor.zeros([0, 5])],
    [
      'c',
      Tensor.from(
        Array.from({ length: 24 }, (_, i) => i / 7),
        [2, 3, 4],
      ),
    ],
  ]);
}

function assertSameTensors(actual: Map<string, Tensor>, want: Map<string, Tensor>): void {
  assert.deepEqual([...actual.keys()].sort(), [...want.keys()].sort());
  for (const [name, t] of want) {
    const got = actual.get(name)!;
    assert.deepEqual(got.shape, t.shape, name);
    // Bit-exact, NaN and -0 included.
    assert.deepEqual(
      new Uint32Array(got.data.buffer, got.data.byteOffset, got.size),
      new Uint32Array(t.data.buffer, t.data.byteOffset, t.size),
      name,
    );
  }
}

describe('safetensors round trip', () => {
  test('in memory: values bit-exact, shapes, metadata, order', () => {
    const tensors = sampleTensors();
    const bytes = encodeSafetensors(tensors, { format: 'glam-moe/1', note: 'ünï' });
    const decoded = decodeSafetensors(bytes);
    assertSameTensors(decoded.tensors, tensors);
    assert.deepEqual(decoded.metadata, { format: 'glam-moe/1', note: 'ünï' });
  });

  test('layout follows the reference writer: 8-aligned data, header JSON first', () => {
    const bytes = Buffer.from(encodeSafetensors(sampleTensors()));
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    assert.equal(bytes[8], '{'.charCodeAt(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<
      string,
      { data_offsets: number[] }
    >;
    assert.deepEqual(header.a!.data_offsets, [0, 32]);
    assert.deepEqual(header['b.weight']!.data_offsets, [32, 44]);
    assert.equal(bytes.length, 8 + n + 4 * (8 + 3 + 1 + 0 + 24));
  });

  test('file: writeSafetensors then readSafetensors; file equals the in-memory encoding', () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'x.safetensors');
      const tensors = sampleTensors();
      writeSafetensors(file, tensors, { k: 'v' });
      assert.deepEqual(new Uint8Array(readFileSync(file)), encodeSafetensors(tensors, { k: 'v' }));
      const read = readSafetensors(file);
      assertSameTensors(read.tensors, tensors);
      assert.deepEqual(read.metadata, { k: 'v' });
      for (const t of read.tensors.values()) assert.equal(t.data.byteOffset % 4, 0);
      assert.deepEqual(readdirSync(dir), ['x.safetensors'], 'no temporary file left behind');
    } finally {
      cleanup();
    }
  });

  test('reading a subset by name; unknown names refused', () => {
    const bytes = encodeSafetensors(sampleTensors());
    const { tensors } = decodeSafetensors(bytes, 'mem', { names: ['c'] });
    assert.deepEqual([...tensors.keys()], ['c']);
    assert.throws(() => decodeSafetensors(bytes, 'mem', { names: ['zzz'] }), /no tensor named 'zzz'/);
  });

  test('writer refuses duplicate and reserved names', () => {
    const t = Tensor.zeros([1]);
    assert.throws(
      () => encodeSafetensors([['x', t] as const, ['x', t] as const]),
      /duplicate tensor name 'x'/,
    );
    assert.throws(() => encodeSafetensors([['__metadata__', t] as const]), /invalid tensor name/);
  });

  test('halfToFloat decodes specials', () => {
    assert.equal(halfToFloat(0x3c00), 1);
    assert.equal(halfToFloat(0xc000), -2);
    assert.equal(halfToFloat(0x7bff), 65504);
    assert.equal(halfToFloat(0x0001), 2 ** -24);
    assert.equal(halfToFloat(0x7c00), Number.POSITIVE_INFINITY);
    assert.ok(Number.isNaN(halfToFloat(0x7e00)));
    assert.ok(Object.is(halfToFloat(0x8000), -0));
  });
});

describe('safetensors written by PyTorch (tools/make_safetensors_fixtures.py)', () => {
  test('F32 fixture: every tensor, value and the metadata', () => {
    const want = expected('basic_f32');
    const { tensors, metadata } = readSafetensors(fixture('safetensors', 'basic_f32.safetensors'));
    assert.deepEqual(metadata, want.metadata);
    assert.deepEqual([...tensors.keys()].sort(), Object.keys(want.tensors).sort());
    for (const [name, w] of Object.entries(want.tensors)) {
      const t = tensors.get(name)!;
      assert.deepEqual([...t.shape], w.shape, name);
      assert.deepEqual(
        Array.from(t.data),
        w.values.map((v) => Math.fround(jsonFloat(v))),
        name,
      );
    }
  });

  test('F16, BF16 and F64 convert to float32; an I32 tensor cannot be read as float', () => {
    const file = fixture('safetensors', 'mixed_dtypes.safetensors');
    const want = expected('mixed_dtypes');
    const header = readSafetensorsHeader(file);
    assert.deepEqual(Object.fromEntries(header.entries.map((e) => [e.name, e.dtype])), {
      half: 'F16',
      bf16: 'BF16',
      double: 'F64',
      f32: 'F32',
      ids: 'I32',
    });
    assert.throws(() => readSafetensors(file), /tensor 'ids' has dtype I32, which cannot be read as float32/);
    const floats = Object.keys(want.tensors);
    const { tensors } = readSafetensors(file, { names: floats });
    for (const [name, w] of Object.entries(want.tensors)) {
      const t = tensors.get(name)!;
      assert.deepEqual([...t.shape], w.shape, name);
      const got = Array.from(t.data);
      const exp = w.values.map((v) => Math.fround(jsonFloat(v)));
      assert.deepEqual(got, exp, name);
    }
    assert.throws(
      () => readSafetensors(file, { names: ['half'], requireF32: true }),
      /'half' has dtype F16, expected F32/,
    );
  });

  test('decodeSafetensors of the file bytes agrees with the fd reader', () => {
    const file = fixture('safetensors', 'basic_f32.safetensors');
    assertSameTensors(decodeSafetensors(readFileSync(file)).tensors, readSafetensors(file).tensors);
  });
});

describe('malformed safetensors are refused with the problem named', () => {
  const f32 = (n: number) => new Uint8Array(4 * n);
  const cases: [string, Uint8Array, RegExp][] = [
    ['file shorter than the length field', new Uint8Array(5), /too short/],
    ['header length beyond the file', rawFile({}, new Uint8Array(0), 1000n), /header length 1000 exceeds/],
    ['header length past 2^53', rawFile({}, new Uint8Array(0), 2n ** 63n), /exceeds/],
    ['header not UTF-8', rawFile(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /header is not valid UTF-8/],
    ['header not JSON', rawFile('{"a": {"dtype": '), /header is not valid JSON/],
    ['header an array', rawFile('[1, 2]'), /header must be a JSON object/],
    ['metadata not strings', rawFile({ __metadata__: { a: 1 } }), /__metadata__ value 'a' must be a string/],
    [
      'unknown dtype',
      rawFile({ w: { dtype: 'F33', shape: [2], data_offsets: [0, 8] } }, f32(2)),
      /tensor 'w': unknown dtype 'F33'/,
    ],
    [
      'shape not an array of integers',
      rawFile({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, f32(2)),
      /tensor 'w': shape must be an array of non-negative integers/,
    ],
    [
      'data_offsets malformed',
      rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0] } }, f32(2)),
      /tensor 'w': data_offsets must be \[begin, end\]/,
    ],
    [
      'shape × dtype size differs from the offsets span',
      rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2)),
      /tensor 'w': shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] span 8/,
    ],
    [
      'truncated data',
      rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(3)),
      /tensor 'w': data_offsets \[0, 16\] run past the end of the data \(12 bytes\): file truncated/,
    ],
    [
      'overlapping tensors',
      rawFile(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        f32(3),
      ),
      /tensor 'b': data_offsets \[4, 12\] overlap tensor 'a'/,
    ],
    [
      'gap between tensors',
      rawFile(
        {
          a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
        },
        f32(3),
      ),
      /tensor 'b': gap of 4 bytes/,
    ],
    [
      'bytes after the last tensor',
      rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)),
      /4 bytes of data after the last tensor/,
    ],
  ];
  for (const [what, bytes, pattern] of cases) {
    test(`${what} (in memory and from a file)`, () => {
      assert.throws(() => decodeSafetensors(bytes, 'x.safetensors'), pattern);
      const { dir, cleanup } = tempDir();
      try {
        const file = join(dir, 'bad.safetensors');
        writeFileSync(file, bytes);
        assert.throws(
          () => readSafetensors(file),
          (err: Error) => pattern.test(err.message) && err.message.includes(file),
        );
      } finally {
        cleanup();
      }
    });
  }

  test('a valid file cut short anywhere is refused', () => {
    const good = encodeSafetensors(sampleTensors());
    for (const cut of [0, 4, 8, 20, good.length - 1, good.length - 33]) {
      assert.throws(() => decodeSafetensors(good.subarray(0, cut)), Error, `cut at ${cut}`);
    }
  });

  test('a missing file gets a clear message', () => {
    assert.throws(
      () => readSafetensors('/nonexistent/model.safetensors'),
      /model.safetensors: file not found/,
    );
  });
});
