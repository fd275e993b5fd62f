import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { roundToBf16 } from '../../../src/backend/bf16.js';
import {
  convertCheckpoint,
  loadCheckpoint,
  loadCheckpointStored,
  loadTensors,
  saveCheckpoint,
  validateParams,
} from '../../../src/model/checkpoint.js';
import { configToJson } from '../../../src/model/config.js';
import { initParams } from '../../../src/model/init.js';
import { paramSpecs } from '../../../src/model/params.js';
import { getPreset } from '../../../src/model/presets.js';
import {
  encodeSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
} from '../../../src/model/safetensors.js';
import { Bf16Tensor } from '../../../src/tensor/bf16.js';
import { Tensor } from '../../../src/tensor/tensor.js';
import { fixture, tempDir } from './helpers.js';

const cfg = getPreset('tiny-moe');

function withDir(body: (dir: string) => void): void {
  const { dir, cleanup } = tempDir();
  try {
    body(dir);
  } finally {
    cleanup();
  }
}

/** A valid checkpoint in `dir`, written by saveCheckpoint. */
function writeGood(dir: string): Map<string, Tensor> {
  const params = initParams(cfg, 7);
  saveCheckpoint(dir, cfg, params);
  return new Map(params);
}

/** A safetensors file by hand, each entry with its dtype and raw bytes. */
function handFile(entries: { name: string; dtype: string; shape: number[]; bytes: number }[]): Uint8Array {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes] };
    off += e.bytes;
  }
  const text = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + text.length + off);
  out.writeBigUInt64LE(BigInt(text.length), 0);
  text.copy(out, 8);
  return out;
}

describe('checkpoint round trip', () => {
  test('config, every parameter bit-exact, tokenizer; no temporary files', () => {
    withDir((dir) => {
      const params = initParams(cfg, 3);
      const tokenizer = { model: 'unigram', pieces: [['a', -1.5]] };
      saveCheckpoint(dir, cfg, params, { tokenizer });
      assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
      const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(raw.format, 'glam-moe/1');
      const loaded = loadCheckpoint(dir);
      assert.deepEqual(loaded.config, cfg);
      assert.equal(loaded.weights.size, params.size);
      for (const [name, t] of params) assert.deepEqual(loaded.weights.get(name).data, t.data, name);
      // Loaded straight into one flat buffer, padding and all.
      assert.deepEqual(loaded.weights.data, params.data);
      assert.equal(loaded.tokenizerPath, join(dir, 'tokenizer.json'));
      assert.deepEqual(JSON.parse(readFileSync(loaded.tokenizerPath!, 'utf8')), tokenizer);
    });
  });

  test('tokens are written in paramSpecs order; overwriting keeps one consistent checkpoint', () => {
    withDir((dir) => {
      writeGood(dir);
      const p2 = initParams(cfg, 8);
      saveCheckpoint(dir, cfg, p2, { tokenizer: '{"v": 2}' });
      const loaded = loadCheckpoint(dir);
      assert.deepEqual(loaded.weights.get('embed.weight').data, p2.get('embed.weight').data);
      assert.deepEqual(
        [...loaded.weights.keys()],
        paramSpecs(cfg).map((s) => s.name),
      );
    });
  });

  test('saveCheckpoint refuses parameters that do not match the config, writing nothing', () => {
    withDir((dir) => {
      const out = join(dir, 'ckpt');
      const params = new Map(initParams(cfg, 1));
      params.delete('final_norm.scale');
      assert.throws(() => saveCheckpoint(out, cfg, params), /missing tensor 'final_norm.scale'/);
      const wrong = new Map(initParams(cfg, 1));
      wrong.set('layers.0.attn.wq', Tensor.zeros([64, 32]));
      assert.throws(
        () => saveCheckpoint(out, cfg, wrong),
        /'layers.0.attn.wq' has shape \[64, 32\], expected \[64, 64\]/,
      );
      assert.throws(
        () => saveCheckpoint(out, cfg, initParams(cfg, 1), { tokenizer: '{oops' }),
        /tokenizer is not valid JSON/,
      );
      assert.equal(existsSync(out), false);
    });
  });

  test('loadTensors reads other tensor files, checked against expectations', () => {
    withDir((dir) => {
      const file = join(dir, 'optimizer.safetensors');
      const state = new Map([
        ['embed.weight.v_row', Tensor.from([1, 2, 3], [3])],
        ['embed.weight.v_col', Tensor.from([4, 5], [2])],
      ]);
      writeSafetensors(file, state, { step: '10' });
      const back = loadTensors(file, [
        { name: 'embed.weight.v_row', shape: [3] },
        { name: 'embed.weight.v_col', shape: [2] },
      ]);
      assert.deepEqual(Array.from(back.get('embed.weight.v_col')!.data), [4, 5]);
      assert.throws(
        () => loadTensors(file, [{ name: 'embed.weight.v_row', shape: [3] }]),
        /unexpected tensor 'embed.weight.v_col'/,
      );
      assert.throws(() => loadTensors(join(dir, 'none.safetensors')), /none.safetensors: file not found/);
    });
  });
});

describe('bf16 checkpoints', () => {
  test('matrices stored BF16 (nearest even), vectors F32; loaded widened or as stored', () => {
    withDir((dir) => {
      const params = initParams(cfg, 5);
      saveCheckpoint(dir, cfg, params, { dtype: 'bf16' });
      const header = readSafetensorsHeader(join(dir, 'model.safetensors'));
      assert.equal(header.metadata.dtype, 'bf16');
      const kinds = new Map(paramSpecs(cfg).map((s) => [s.name, s.kind]));
      const bf16Kinds = ['embedding', 'projection', 'expert'];
      for (const e of header.entries) {
        assert.equal(e.dtype, bf16Kinds.includes(kinds.get(e.name)!) ? 'BF16' : 'F32', e.name);
      }
      const widened = loadCheckpoint(dir).weights;
      const stored = loadCheckpointStored(dir);
      assert.equal(stored.dtype, 'bf16');
      for (const [name, t] of params) {
        const w = widened.get(name)!;
        const s = stored.weights.get(name)!;
        if (s instanceof Bf16Tensor) {
          assert.deepEqual(s.shape, t.shape);
          for (let i = 0; i < t.size; i++) assert.equal(w.data[i], roundToBf16(t.data[i]!), `${name}[${i}]`);
          assert.deepEqual(s.toTensor().data, w.data, name);
        } else {
          assert.ok(s instanceof Tensor, name);
          assert.deepEqual(w.data, t.data, name);
          assert.deepEqual(s.data, t.data, name);
        }
      }
      // An f32 checkpoint loads as stored too, every weight float32.
      const f32 = join(dir, 'f32');
      saveCheckpoint(f32, cfg, params);
      const plain = loadCheckpointStored(f32);
      assert.equal(plain.dtype, 'f32');
      assert.ok([...plain.weights.values()].every((t) => t instanceof Tensor));
    });
  });

  test('convert: bf16 and back to f32 (exact), tokenizer kept, never into a non-empty directory', () => {
    withDir((dir) => {
      const src = join(dir, 'src');
      const params = initParams(cfg, 6);
      saveCheckpoint(src, cfg, params, { tokenizer: { model: 'x' } });
      convertCheckpoint(src, join(dir, 'b'), 'bf16');
      assert.deepEqual(readdirSync(join(dir, 'b')).sort(), [
        'config.json',
        'model.safetensors',
        'tokenizer.json',
      ]);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'b', 'tokenizer.json'), 'utf8')), { model: 'x' });
      mkdirSync(join(dir, 'empty'));
      convertCheckpoint(join(dir, 'b'), join(dir, 'empty'), 'f32');
      const back = loadCheckpoint(join(dir, 'empty')).weights;
      const viaBf16 = loadCheckpoint(join(dir, 'b')).weights;
      for (const [name, t] of back) assert.deepEqual(t.data, viaBf16.get(name)!.data, name);
      assert.ok(
        readSafetensorsHeader(join(dir, 'empty', 'model.safetensors')).entries.every(
          (e) => e.dtype === 'F32',
        ),
      );
      assert.throws(() => convertCheckpoint(src, join(dir, 'b'), 'bf16'), /'.*b' exists and is not empty/);
      writeFileSync(join(dir, 'file'), 'x');
      assert.throws(() => convertCheckpoint(src, join(dir, 'file'), 'bf16'), /exists and is not a directory/);
      assert.throws(
        () => convertCheckpoint(src, join(dir, 'c'), 'f16' as 'bf16'),
        /dtype must be one of f32, bf16/,
      );
      assert.ok(!existsSync(join(dir, 'c')));
    });
  });

  test('a bf16 NaN is refused when loading as stored', () => {
    withDir((dir) => {
      const params = initParams(cfg, 8);
      params.get('layers.0.moe.wi')!.data[5] = Number.NaN;
      saveCheckpoint(dir, cfg, params, { dtype: 'bf16' });
      assert.throws(
        () => loadCheckpointStored(dir),
        /tensor 'layers.0.moe.wi' holds a non-finite value at element 5/,
      );
      assert.throws(() => loadCheckpoint(dir), /tensor 'layers.0.moe.wi' holds NaN at element 5/);
    });
  });
});

describe('checkpoints written by PyTorch load', () => {
  test('micro checkpoint (tools/make_safetensors_fixtures.py): values as written', () => {
    const dir = fixture('safetensors', 'micro_checkpoint');
    const want = JSON.parse(
      readFileSync(fixture('safetensors', 'micro_checkpoint.expected.json'), 'utf8'),
    ) as Record<string, { shape: number[]; sum: number; first: number[] }>;
    const { config, weights: params } = loadCheckpoint(dir);
    assert.equal(config.n_experts, 4);
    assert.equal(config.d_ff_expert, 6);
    assert.deepEqual([...params.keys()].sort(), Object.keys(want).sort());
    for (const [name, w] of Object.entries(want)) {
      const t = params.get(name)!;
      assert.deepEqual([...t.shape], w.shape, name);
      assert.deepEqual(Array.from(t.data.subarray(0, 3)), w.first, name);
      let sum = 0;
      for (const v of t.data) sum += v;
      assert.ok(Math.abs(sum - w.sum) < 1e-9 * (1 + Math.abs(w.sum)), `${name}: sum ${sum} vs ${w.sum}`);
    }
    validateParams(config, params);
  });

  test('parity fixtures (tools/torch_glam.py) load and validate', () => {
    const root = fixture('parity');
    if (!existsSync(root)) return;
    for (const name of readdirSync(root)) {
      if (!existsSync(join(root, name, 'config.json'))) continue;
      const { config, weights: params } = loadCheckpoint(join(root, name));
      assert.equal(params.size, paramSpecs(config).length, name);
    }
  });
});

describe('bad checkpoints are refused with the problem named', () => {
  test('missing directory, not a directory, no config.json', () => {
    withDir((dir) => {
      assert.throws(() => loadCheckpoint(join(dir, 'nope')), /checkpoint directory '.*nope' does not exist/);
      writeFileSync(join(dir, 'file'), 'x');
      assert.throws(() => loadCheckpoint(join(dir, 'file')), /is not a directory/);
      assert.throws(() => loadCheckpoint(dir), /is not a checkpoint: config.json not found/);
    });
  });

  const configCases: [string, (c: Record<string, unknown>) => unknown, RegExp][] = [
    ['not JSON', () => '{"vocab_size": 5,', /config.json: not valid JSON/],
    ['not an object', () => [1, 2], /config.json: expected a JSON object/],
    [
      'missing key',
      (c) => {
        delete c.d_model;
        return c;
      },
      /config.json: missing required key 'd_model'/,
    ],
    [
      'wrong type',
      (c) => ({ ...c, n_layers: '2' }),
      /config.json: 'n_layers' must be a finite number, got "2"/,
    ],
    ['wrong boolean', (c) => ({ ...c, expert_gated: 'yes' }), /'expert_gated' must be true or false/],
    ['unknown key', (c) => ({ ...c, dmodel: 64 }), /config.json: unknown key 'dmodel'/],
    [
      'missing format',
      (c) => {
        delete c.format;
        return c;
      },
      /config.json: missing key 'format'/,
    ],
    ['wrong format', (c) => ({ ...c, format: 'glam-moe/0' }), /format 'glam-moe\/0' is not 'glam-moe\/1'/],
    [
      'config disagrees with the weights',
      (c) => ({ ...c, n_layers: 3 }),
      /missing tensor 'layers.2.attn_norm.scale'/,
    ],
  ];
  for (const [what, edit, pattern] of configCases) {
    test(`config.json: ${what}`, () => {
      withDir((dir) => {
        writeGood(dir);
        const edited = edit(configToJson(cfg));
        writeFileSync(join(dir, 'config.json'), typeof edited === 'string' ? edited : JSON.stringify(edited));
        assert.throws(() => loadCheckpoint(dir), pattern);
      });
    });
  }

  test('model.safetensors missing', () => {
    withDir((dir) => {
      writeGood(dir);
      writeFileSync(join(dir, 'model.safetensors'), '');
      assert.throws(() => loadCheckpoint(dir), /model.safetensors: file is 0 bytes, too short/);
      writeGood(dir);
      unlinkSync(join(dir, 'model.safetensors'));
      assert.throws(() => loadCheckpoint(dir), /model.safetensors: file not found/);
    });
  });

  /** Rewrite model.safetensors from an edited copy of the good parameters. */
  function withTensors(dir: string, edit: (p: Map<string, Tensor>) => void): void {
    const params = writeGood(dir);
    edit(params);
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(params));
  }

  test('missing tensor', () => {
    withDir((dir) => {
      withTensors(dir, (p) => p.delete('layers.1.ffn.wo'));
      assert.throws(() => loadCheckpoint(dir), /model.safetensors: missing tensor 'layers.1.ffn.wo'/);
    });
  });

  test('unexpected tensor', () => {
    withDir((dir) => {
      withTensors(dir, (p) => p.set('layers.1.moe.router', Tensor.zeros([64, 8])));
      assert.throws(() => loadCheckpoint(dir), /model.safetensors: unexpected tensor 'layers.1.moe.router'/);
    });
  });

  test('wrong shape', () => {
    withDir((dir) => {
      withTensors(dir, (p) => p.set('layers.0.moe.wi', Tensor.zeros([8, 128, 64])));
      assert.throws(
        () => loadCheckpoint(dir),
        /tensor 'layers.0.moe.wi' has shape \[8, 128, 64\], expected \[8, 64, 128\]/,
      );
    });
  });

  test('wrong dtype', () => {
    withDir((dir) => {
      writeGood(dir);
      const entries = paramSpecs(cfg).map((s) => {
        const n = s.shape.reduce((a, b) => a * b, 1);
        const half = s.name === 'final_norm.scale';
        return { name: s.name, dtype: half ? 'F16' : 'F32', shape: s.shape, bytes: n * (half ? 2 : 4) };
      });
      writeFileSync(join(dir, 'model.safetensors'), handFile(entries));
      assert.throws(
        () => loadCheckpoint(dir),
        /tensor 'final_norm.scale' has dtype F16, expected F32 or BF16/,
      );
    });
  });

  test('truncated model.safetensors names the tensor cut off', () => {
    withDir((dir) => {
      writeGood(dir);
      const file = join(dir, 'model.safetensors');
      const size = readFileSync(file).length;
      truncateSync(file, size - 100);
      // final_norm.scale (64 floats = 256 bytes) is the last tensor written.
      assert.throws(
        () => loadCheckpoint(dir),
        /tensor 'final_norm.scale': data_offsets \[\d+, \d+\] run past the end of the data .*truncated/,
      );
    });
  });

  test('a subdirectory named model.safetensors is not a file', () => {
    withDir((dir) => {
      writeGood(dir);
      unlinkSync(join(dir, 'model.safetensors'));
      mkdirSync(join(dir, 'model.safetensors'));
      assert.throws(() => loadCheckpoint(dir), /model.safetensors: not a regular file/);
    });
  });
});
