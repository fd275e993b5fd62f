/** The `glam info`, `init` and `score` commands, run as a user would (node bin/glam.js ...). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadCheckpoint } from '../../../src/model/checkpoint.js';
import { GlamModel } from '../../../src/model/glam.js';
import { initParams } from '../../../src/model/init.js';
import { getPreset } from '../../../src/model/presets.js';
import { Rng } from '../../../src/util/rng.js';
import { repoRoot, tempDir } from './helpers.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function glam(...args: string[]): Run {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'bin', 'glam.js'), ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(r: Run): string {
  assert.equal(r.code, 0, `exit ${r.code}; stderr: ${r.stderr}`);
  return r.stdout;
}

function fails(r: Run, pattern: RegExp): void {
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}; stdout: ${r.stdout}`);
  assert.match(r.stderr, pattern);
}

describe('glam info', () => {
  test('--json for glam-64b-64e: 1.16T total, 96.6B active', () => {
    const a = JSON.parse(ok(glam('info', '--config', 'glam-64b-64e', '--json'))) as Record<string, number>;
    for (const key of [
      'total_params',
      'active_params',
      'train_flops_per_token',
      'infer_flops_per_token',
      'weight_bytes',
      'adafactor_bytes',
    ]) {
      assert.equal(typeof a[key], 'number', key);
    }
    assert.ok(Math.abs(a.total_params! / 1.16e12 - 1) < 0.01, `total ${a.total_params}`);
    assert.ok(Math.abs(a.active_params! / 96.6e9 - 1) < 0.01, `active ${a.active_params}`);
  });

  test('human table', () => {
    const out = ok(glam('info', '--config', 'tiny-moe'));
    assert.match(out, /total params\s+222K/);
    assert.match(out, /active params \/ token/);
    assert.match(out, /Adafactor state/);
  });

  test('--help, missing --config, unknown preset, unknown option', () => {
    assert.match(ok(glam('info', '--help')), /usage: glam info/);
    fails(glam('info'), /--config is required/);
    fails(
      glam('info', '--config', 'glam-2b'),
      /neither a preset, a config file nor a checkpoint directory; presets: .*tiny-moe/,
    );
    fails(glam('info', '--config', 'tiny', '--bogus'), /bogus/);
  });
});

describe('glam init', () => {
  test('writes a checkpoint equal to initParams(config, seed); refuses to overwrite without --force', () => {
    const { dir, cleanup } = tempDir();
    try {
      const out = join(dir, 'ckpt');
      ok(glam('init', '--config', 'tiny-moe', '--seed', '5', '--out', out));
      assert.deepEqual(readdirSync(out).sort(), ['config.json', 'model.safetensors']);
      const { config, weights } = loadCheckpoint(out);
      assert.deepEqual(config, getPreset('tiny-moe'));
      assert.deepEqual(weights.data, initParams(config, 5).data);
      fails(glam('init', '--config', 'tiny-moe', '--out', out), /already holds a checkpoint; pass --force/);
      ok(glam('init', '--config', 'tiny', '--out', out, '--force'));
      assert.equal(loadCheckpoint(out).config.n_experts, 0);
    } finally {
      cleanup();
    }
  });

  test('bad arguments', () => {
    fails(glam('init', '--config', 'tiny'), /--out is required/);
    fails(glam('init', '--config', 'tiny', '--out', '/tmp/x', '--seed=-3'), /--seed must be an integer >= 0/);
    fails(
      glam('init', '--config', 'tiny', '--out', '/tmp/x', '--seed', 'abc'),
      /--seed must be an integer >= 0, got 'abc'/,
    );
    fails(glam('init', '--config', 'glam-64b-64e', '--out', '/tmp/never'), /weights need .* TiB of memory/);
  });
});

describe('glam score', () => {
  let dir = '';
  let cleanup = (): void => {};
  let ckpt = '';
  const rng = new Rng(99);
  const row = (len: number) => Array.from({ length: len }, () => rng.int(512));
  const equalRows = [row(17), row(17), row(17), row(17)];
  const mixedRows = [row(9), row(13), row(9), row(2)];

  before(() => {
    ({ dir, cleanup } = tempDir());
    ckpt = join(dir, 'ckpt');
    ok(glam('init', '--config', 'tiny-moe', '--seed', '2', '--out', ckpt));
  });
  after(() => cleanup());

  function tokens(name: string, content: unknown): string {
    const file = join(dir, name);
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  }

  function direct(rows: number[][], capacityFactor?: number) {
    const { config, weights } = loadCheckpoint(ckpt);
    const model = new GlamModel(config);
    const B = rows.length;
    const T = rows[0]!.length - 1;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    rows.forEach((r, b) => {
      for (let t = 0; t < T; t++) {
        inputs[b * T + t] = r[t]!;
        targets[b * T + t] = r[t + 1]!;
      }
    });
    return model.forward(
      weights,
      model.workspace(),
      { inputs, targets, batch: B, seqLen: T },
      { capacityFactor, rng: new Rng(0) },
    );
  }

  function close(a: number, b: number, what: string): void {
    assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
  }

  test('equal-length rows: exactly one forward pass over the batch', () => {
    const s = JSON.parse(
      ok(glam('score', '--model', ckpt, '--tokens', tokens('eq.json', equalRows), '--json')),
    );
    const d = direct(equalRows);
    close(s.lm_loss, d.lm, 'lm');
    close(s.z_loss, d.z, 'z');
    close(s.aux_loss, d.aux, 'aux');
    close(s.total_loss, d.total, 'total');
    assert.equal(s.tokens, 64);
    assert.equal(s.dropped, d.dropped);
    assert.equal(s.capacity_factor, 2);
    assert.deepEqual(s.moe[0].load, d.moe[0]!.load);
  });

  test('--capacity-factor overrides the config: 0 drops nothing, a small factor drops', () => {
    const file = tokens('eq.json', equalRows);
    const dropless = JSON.parse(
      ok(glam('score', '--model', ckpt, '--tokens', file, '--capacity-factor', '0', '--json')),
    );
    assert.equal(dropless.dropped, 0);
    close(dropless.lm_loss, direct(equalRows, 0).lm, 'lm dropless');
    const tight = JSON.parse(
      ok(glam('score', '--model', ckpt, '--tokens', file, '--capacity-factor', '0.25', '--json')),
    );
    assert.ok(tight.dropped > 0, 'capacity 0.25 drops assignments');
    assert.equal(tight.dropped, direct(equalRows, 0.25).dropped);
  });

  test('rows of different lengths: scored by length group, combined by tokens', () => {
    const s = JSON.parse(
      ok(glam('score', '--model', ckpt, '--tokens', tokens('mixed.json', mixedRows), '--json')),
    );
    const groups = [[mixedRows[0]!, mixedRows[2]!], [mixedRows[1]!], [mixedRows[3]!]];
    const parts = groups.map((g) => direct(g));
    const n = parts.reduce((a, p) => a + p.tokens, 0);
    assert.equal(s.tokens, n);
    assert.equal(n, 8 + 8 + 12 + 1);
    close(s.lm_loss, parts.reduce((a, p) => a + p.lm * p.tokens, 0) / n, 'lm');
    close(s.z_loss, parts.reduce((a, p) => a + p.z * p.tokens, 0) / n, 'z');
    const cfg = getPreset('tiny-moe');
    close(s.total_loss, s.lm_loss + cfg.z_loss_weight * s.z_loss + cfg.aux_loss_weight * s.aux_loss, 'total');
  });

  test('glam convert --dtype bf16: a bf16 checkpoint that scores like the float32 one', () => {
    const bf16 = join(dir, 'bf16');
    assert.match(ok(glam('convert', '--model', ckpt, '--dtype', 'bf16', '--out', bf16)), /bf16 weights/);
    const file = tokens('eq.json', equalRows);
    const a = JSON.parse(ok(glam('score', '--model', ckpt, '--tokens', file, '--json')));
    const b = JSON.parse(ok(glam('score', '--model', bf16, '--tokens', file, '--json')));
    // Weights rounded to 8 significant bits move the loss a little, not a lot.
    assert.notEqual(a.lm_loss, b.lm_loss);
    assert.ok(Math.abs(a.lm_loss - b.lm_loss) < 0.01 * a.lm_loss, `${a.lm_loss} vs ${b.lm_loss}`);
    const again = glam('convert', '--model', ckpt, '--dtype', 'bf16', '--out', bf16);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists and is not empty/);
    const bad = glam('convert', '--model', ckpt, '--dtype', 'f16', '--out', join(dir, 'x'));
    assert.match(bad.stderr, /--dtype must be one of f32, bf16, got 'f16'/);
    assert.match(glam('convert', '--model', ckpt, '--dtype', 'bf16').stderr, /--out/);
  });

  test('human output', () => {
    const out = ok(glam('score', '--model', ckpt, '--tokens', tokens('eq.json', equalRows)));
    for (const key of ['lm_loss', 'z_loss', 'aux_loss', 'total_loss', 'tokens', 'dropped'])
      assert.match(out, new RegExp(key));
  });

  const badFiles: [string, unknown, RegExp][] = [
    ['not JSON', '[[1, 2', /not valid JSON/],
    ['not an array', { rows: [] }, /expected a non-empty JSON array of rows/],
    ['empty array', [], /expected a non-empty JSON array/],
    ['row not an array', [[1, 2], 3], /row 1 is not an array of token ids/],
    ['non-integer id', [[1, 2.5]], /row 0, position 1: 2.5 is not an integer token id/],
    ['string id', [[1, '2']], /row 0, position 1: "2" is not an integer token id/],
    [
      'id out of vocabulary',
      [[1, 512]],
      /row 0, position 1: token id 512 is outside the vocabulary \[0, 512\)/,
    ],
    ['negative id', [[-1, 5]], /token id -1 is outside the vocabulary/],
    ['row too short', [[1, 2], [7]], /row 1 has 1 token\(s\); a row needs at least 2/],
    [
      'row too long',
      [Array.from({ length: 66 }, () => 1)],
      /row 0 has 66 tokens: T = 65 exceeds max_seq_len 64/,
    ],
  ];
  for (const [what, content, pattern] of badFiles) {
    test(`bad tokens file: ${what}`, () => {
      fails(glam('score', '--model', ckpt, '--tokens', tokens('bad.json', content)), pattern);
    });
  }

  test('missing files and options', () => {
    fails(glam('score', '--model', ckpt, '--tokens', join(dir, 'none.json')), /none.json: file not found/);
    fails(
      glam('score', '--model', join(dir, 'nockpt'), '--tokens', tokens('eq.json', equalRows)),
      /does not exist/,
    );
    fails(glam('score', '--model', ckpt), /--tokens is required/);
    fails(
      glam('score', '--model', ckpt, '--tokens', tokens('eq.json', equalRows), '--capacity-factor', 'lots'),
      /--capacity-factor must be a number/,
    );
  });
});
