import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../../src/model/config.js';
import { fanIn, initParams, initStd } from '../../../src/model/init.js';
import { paramSpecs } from '../../../src/model/params.js';
import { getPreset } from '../../../src/model/presets.js';

function stats(a: Float32Array): { mean: number; std: number } {
  let s = 0;
  for (const v of a) s += v;
  const mean = s / a.length;
  let q = 0;
  for (const v of a) q += (v - mean) ** 2;
  return { mean, std: Math.sqrt(q / a.length) };
}

// Wide enough that sampling error is small: each tensor has >= 4096 elements.
const cfg = parseConfig({
  vocab_size: 640,
  d_model: 96,
  n_layers: 2,
  n_heads: 4,
  d_head: 32,
  d_ff: 160,
  n_experts: 4,
  d_ff_expert: 48,
  max_seq_len: 32,
});

describe('initParams', () => {
  const params = initParams(cfg, 1234);

  test('every spec present with its shape', () => {
    const specs = paramSpecs(cfg);
    assert.deepEqual(
      [...params.keys()],
      specs.map((s) => s.name),
    );
    for (const s of specs) assert.deepEqual([...params.get(s.name)!.shape], s.shape);
  });

  test('fan_in: [in, out] matrices use in; experts [E, in, out] use in', () => {
    const byName = new Map(paramSpecs(cfg).map((s) => [s.name, s]));
    assert.equal(fanIn(byName.get('layers.0.moe.wi')!), 96);
    assert.equal(fanIn(byName.get('layers.0.moe.wo')!), 48);
    assert.equal(fanIn(byName.get('layers.1.ffn.wo')!), 160);
    assert.equal(fanIn(byName.get('layers.1.attn.wo')!), 128);
    assert.equal(initStd(cfg, byName.get('layers.0.moe.router')!), 1 / Math.sqrt(96));
    assert.equal(initStd(cfg, byName.get('embed.weight')!), 1);
  });

  test('norm scales are 1, rel_bias is 0', () => {
    for (const [name, t] of params) {
      if (name.endsWith('.scale'))
        assert.ok(
          t.data.every((v) => v === 1),
          name,
        );
      if (name.endsWith('rel_bias'))
        assert.ok(
          t.data.every((v) => v === 0),
          name,
        );
    }
  });

  test('random tensors: mean 0 and the std of docs/model.md "Initialisation" within sampling tolerance', () => {
    const expectedStd: Record<string, number> = {
      'embed.weight': 1,
      'layers.0.attn.wq': 1 / Math.sqrt(96),
      'layers.0.attn.wo': 1 / Math.sqrt(128),
      'layers.0.moe.router': 1 / Math.sqrt(96),
      'layers.0.moe.wi': 1 / Math.sqrt(96),
      'layers.0.moe.wo': 1 / Math.sqrt(48),
      'layers.1.ffn.wi_0': 1 / Math.sqrt(96),
      'layers.1.ffn.wi_1': 1 / Math.sqrt(96),
      'layers.1.ffn.wo': 1 / Math.sqrt(160),
    };
    for (const [name, want] of Object.entries(expectedStd)) {
      const t = params.get(name)!;
      const { mean, std } = stats(t.data);
      const n = t.size;
      // 5 standard errors: mean's is std/sqrt(n), std's is about std/sqrt(2n).
      assert.ok(Math.abs(mean) < (5 * want) / Math.sqrt(n), `${name}: mean ${mean}`);
      assert.ok(Math.abs(std / want - 1) < 5 / Math.sqrt(2 * n), `${name}: std ${std} vs ${want}`);
    }
  });

  test('each expert slice is drawn with the same std (no expert left at zero)', () => {
    const wi = params.get('layers.0.moe.wi')!;
    for (let e = 0; e < 4; e++) {
      const { std } = stats(wi.row(e).data);
      assert.ok(Math.abs(std * Math.sqrt(96) - 1) < 0.05, `expert ${e}: std ${std}`);
    }
  });

  test('reproducible from the seed; another seed differs', () => {
    const again = initParams(cfg, 1234);
    for (const [name, t] of params) assert.deepEqual(again.get(name)!.data, t.data, name);
    const other = initParams(cfg, 1235);
    assert.notDeepEqual(other.get('layers.0.attn.wq')!.data, params.get('layers.0.attn.wq')!.data);
  });

  test('tensors are independent draws: no two share values', () => {
    const a = params.get('layers.0.attn.wq')!.data;
    const b = params.get('layers.0.attn.wk')!.data;
    assert.notEqual(a[0], b[0]);
    assert.notDeepEqual(a.subarray(0, 16), b.subarray(0, 16));
  });

  test("a tensor's values do not depend on the rest of the config", () => {
    const deeper = parseConfig({ ...cfg, n_layers: 4 });
    const p4 = initParams(deeper, 1234);
    assert.deepEqual(p4.get('layers.1.ffn.wo')!.data, params.get('layers.1.ffn.wo')!.data);
  });

  test('large seeds use their high bits; bad seeds are refused', () => {
    const tiny = getPreset('tiny');
    const a = initParams(tiny, 2 ** 40).get('embed.weight')!.data;
    const b = initParams(tiny, 0).get('embed.weight')!.data;
    assert.notDeepEqual(a.subarray(0, 8), b.subarray(0, 8));
    assert.throws(() => initParams(tiny, -1), /seed must be a non-negative integer/);
    assert.throws(() => initParams(tiny, 1.5), /seed must be a non-negative integer/);
  });
});
