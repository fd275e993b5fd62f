import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { accounting, formatBytes, formatCount, formatFlops } from '../../../src/model/accounting.js';
import { getPreset, presetNames, resolveConfig } from '../../../src/model/presets.js';
import { tempDir } from './helpers.js';

function within(actual: number, expected: number, rel: number, what: string): void {
  assert.ok(
    Math.abs(actual / expected - 1) <= rel,
    `${what}: ${actual} not within ${rel * 100}% of ${expected}`,
  );
}

describe('accounting', () => {
  test('glam-64b-64e matches the paper: 1.16T total, 96.6B activated (within 1%)', () => {
    const a = accounting(getPreset('glam-64b-64e'));
    within(a.total_params, 1.16e12, 0.01, 'total');
    within(a.active_params, 96.6e9, 0.01, 'active');
    assert.equal(a.moe_layers, 32);
    assert.equal(a.dense_layers, 32);
  });

  test('glam-64b-64e by hand, independent of paramSpecs', () => {
    const [V, D, L, HD, H, F, E, R] = [256000, 8192, 64, 128 * 128, 128, 32768, 64, 32];
    const perLayer = 4 * D * HD + R * H + 2 * D;
    const dense = 3 * D * F;
    const moe = D * E + 2 * E * D * F;
    const total = V * D + L * perLayer + (L / 2) * (dense + moe) + D;
    const active = V * D + L * perLayer + (L / 2) * (dense + D * E + 2 * 2 * D * F) + D;
    const a = accounting(getPreset('glam-64b-64e'));
    assert.equal(a.total_params, total);
    assert.equal(a.active_params, active);
    const matmul = active - L * (R * H + 2 * D) - D;
    assert.equal(a.matmul_params_per_token, matmul);
    assert.equal(a.infer_flops_per_token, 2 * matmul + 4 * L * HD * 1024);
    assert.equal(a.train_flops_per_token, 6 * matmul + 12 * L * HD * 1024);
  });

  test('the paper family lands near Table 4 totals', () => {
    within(accounting(getPreset('glam-1.7b-64e')).total_params, 27e9, 0.02, '1.7B/64E');
    within(accounting(getPreset('glam-1.7b-128e')).total_params, 53e9, 0.02, '1.7B/128E');
    within(accounting(getPreset('glam-1.7b-256e')).total_params, 105e9, 0.02, '1.7B/256E');
    within(accounting(getPreset('glam-8b-64e')).total_params, 143e9, 0.02, '8B/64E');
    within(accounting(getPreset('glam-137b')).total_params, 137e9, 0.02, '137B');
  });

  test('dense models: everything is active; MoE: active grows with top_k only', () => {
    for (const name of ['glam-1.7b', 'tiny', 'small']) {
      const a = accounting(getPreset(name));
      assert.equal(a.active_params, a.total_params, name);
      assert.equal(a.expert_params, 0, name);
    }
    const a64 = accounting(getPreset('glam-1.7b-64e'));
    const a128 = accounting(getPreset('glam-1.7b-128e'));
    // Doubling experts changes active parameters only by the router's extra columns.
    assert.equal(a128.active_params - a64.active_params, 12 * 2048 * 64);
  });

  test('tiny-moe memory figures by hand', () => {
    const cfg = getPreset('tiny-moe');
    const a = accounting(cfg);
    // Adafactor: matrices r + c, experts E·(r + c), vectors in full.
    const layerCommon = 64 + 4 * (64 + 64) + (32 + 4) + 64;
    const moeLayer = 64 + 8 + 8 * (64 + 128) * 2;
    const denseLayer = 2 * (64 + 128) + (128 + 64);
    const elements = 512 + 64 + 2 * layerCommon + moeLayer + denseLayer + 64;
    assert.equal(a.adafactor_bytes, 4 * elements);
    assert.equal(a.weight_bytes, 4 * a.total_params);
    assert.equal(a.weight_bytes_bf16, 2 * a.total_params);
    assert.equal(a.adamw_bytes, 8 * a.total_params);
  });

  test('context length enters only the attention term', () => {
    const cfg = getPreset('small');
    const a = accounting(cfg, 1);
    const b = accounting(cfg, 101);
    assert.equal(
      b.infer_flops_per_token - a.infer_flops_per_token,
      4 * cfg.n_layers * cfg.n_heads * cfg.d_head * 100,
    );
    assert.equal(
      b.train_flops_per_token - a.train_flops_per_token,
      12 * cfg.n_layers * cfg.n_heads * cfg.d_head * 100,
    );
  });

  test('formatting', () => {
    assert.equal(formatCount(1.1617e12), '1.16T');
    assert.equal(formatCount(96.6e9), '96.6B');
    assert.equal(formatCount(512), '512');
    assert.equal(formatFlops(5.925e11), '593 GFLOP');
    assert.equal(formatBytes(1536), '1.50 KiB');
  });
});

describe('presets and resolveConfig', () => {
  test('every preset parses; CPU presets are CPU-sized', () => {
    for (const name of presetNames()) assert.ok(getPreset(name).vocab_size > 0, name);
    assert.ok(accounting(getPreset('tiny')).total_params < 1e6);
    assert.ok(accounting(getPreset('tiny-moe')).total_params < 1e6);
    assert.ok(accounting(getPreset('small-moe')).total_params < 2e7);
    assert.equal(getPreset('tiny-moe').n_experts, 8);
  });

  test('a config file path resolves; errors name the file or list the presets', () => {
    const { dir, cleanup } = tempDir();
    try {
      const good = join(dir, 'c.json');
      writeFileSync(good, JSON.stringify({ ...getPreset('tiny'), d_model: 32 }));
      assert.equal(resolveConfig(good).d_model, 32);
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, '{"d_model": ');
      assert.throws(() => resolveConfig(bad), /bad.json: not valid JSON/);
      const missing = join(dir, 'missing.json');
      writeFileSync(missing, '{"d_model": 8}');
      assert.throws(() => resolveConfig(missing), /missing.json: missing required key/);
      assert.throws(
        () => resolveConfig('glam-9b'),
        /'glam-9b' is neither a preset, a config file nor a checkpoint directory; presets: .*glam-64b-64e/,
      );
    } finally {
      cleanup();
    }
  });
});
