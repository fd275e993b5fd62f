/**
 * Parity of the TypeScript GLaM model with the independent PyTorch reference
 * (tools/torch_glam.py). Each case under test/fixtures/parity is a checkpoint
 * directory (config.json, model.safetensors) plus tokens.json (rows of T+1 ids),
 * expected.json (float64 loss parts, routing statistics) and grads.safetensors
 * (the float64 autograd gradient of the total loss, stored as F32).
 *
 * Tolerances: the model computes in float32 and the reference in float64. A float32
 * PyTorch run of the same fixtures deviates by < 3e-7 relative on the losses and
 * < 3e-6 of max|g| on the gradients (`tools/torch_glam.py check`), so the bounds
 * below (1e-4 and 1e-3) leave a wide margin for other summation orders while still
 * catching any semantic difference. Routing is robust: every token's top-3 router
 * logits are at least 2e-3 apart, so float32 rounding cannot change a decision, and
 * token counts, loads and dropped assignments must match exactly.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { GlamModel } from '../../src/model/glam.js';
import { Grads } from '../../src/model/weights.js';

const LOSS_RTOL = 1e-4;
const GRAD_TOL = 1e-3; // per element, relative to max |g| of the tensor; also relative L2 error

const EXPECTED_CASES = ['dense', 'moe_dropless', 'moe_dropped', 'moe_gated', 'moe_groups'];

interface GradSummary {
  shape: number[];
  l2: number;
  max_abs: number;
  sample: [number, number][];
}

interface MoeLayerExpected {
  layer: number;
  capacity: number | null;
  /** Assignments routed to each expert (first + second choices) before capacity. */
  load: number[];
  /** Assignments each expert processed after capacity. */
  load_kept: number[];
  first_choice: number[];
  dropped: number;
  /** dropped / (2 · tokens). */
  dropped_fraction: number;
  /** Mean over tokens of −Σ_e p log p (nats). */
  router_entropy: number;
  aux: number;
}

interface Expected {
  case: string;
  description: string;
  batch: number;
  seq_len: number;
  capacity_factor: number;
  lm_loss: number;
  z_loss: number;
  aux_loss: number;
  total_loss: number;
  tokens: number;
  dropped: number;
  moe_layers: MoeLayerExpected[];
  grads_file: string;
  grads: Record<string, GradSummary>;
}

/** The fixture folder, whether tests run from the repository root or elsewhere. */
function fixtureRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    resolve(process.cwd(), 'test/fixtures/parity'),
    resolve(here, '../../../test/fixtures/parity'), // compiled: dist/test/model
    resolve(here, '../fixtures/parity'), // source: test/model
  ];
  const found = candidates.find((c) => existsSync(join(c, 'dense', 'expected.json')));
  if (found === undefined) throw new Error(`parity fixtures not found; looked in ${candidates.join(', ')}`);
  return found;
}

/** A minimal F32 safetensors reader, independent of src/model/safetensors.ts. */
function readF32Safetensors(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLen;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    assert.equal(info.dtype, 'F32', `${path}: ${name} dtype`);
    const [a, b] = info.data_offsets;
    const data = new Float32Array((b - a) / 4);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(base + a + 4 * i, true);
    out.set(name, { shape: info.shape, data });
  }
  return out;
}

function assertClose(actual: number, expected: number, rtol: number, what: string, atol = 0): void {
  const err = Math.abs(actual - expected);
  assert.ok(
    Number.isFinite(actual) && err <= rtol * Math.abs(expected) + atol,
    `${what}: got ${actual}, expected ${expected} (|diff| ${err.toExponential(2)}, rtol ${rtol})`,
  );
}

function loadCase(root: string, name: string) {
  const dir = join(root, name);
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
  const rows = JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as number[][];
  const B = rows.length;
  const T = rows[0].length - 1;
  assert.equal(B, expected.batch);
  assert.equal(T, expected.seq_len);
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  rows.forEach((row, b) => {
    assert.equal(row.length, T + 1, `tokens.json row ${b} length`);
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = row[t];
      targets[b * T + t] = row[t + 1];
    }
  });
  const { config, weights } = loadCheckpoint(dir);
  return { dir, expected, inputs, targets, B, T, config, weights };
}

const root = fixtureRoot();
const cases = readdirSync(root)
  .filter((d) => existsSync(join(root, d, 'expected.json')))
  .sort();

test('parity fixtures are all present', () => {
  for (const name of EXPECTED_CASES) assert.ok(cases.includes(name), `missing parity case ${name}`);
});

for (const name of cases) {
  describe(`parity with the PyTorch reference: ${name}`, () => {
    test('loss parts, token count and routing statistics', () => {
      const c = loadCase(root, name);
      const e = c.expected;
      const model = new GlamModel(c.config);
      const batch = { inputs: c.inputs, targets: c.targets, batch: c.B, seqLen: c.T };
      const parts = model.forward(c.weights, model.workspace(), batch, { capacityFactor: e.capacity_factor });

      assert.equal(parts.tokens, e.tokens, 'tokens');
      assert.equal(parts.dropped, e.dropped, 'dropped assignments (all MoE layers)');
      assertClose(parts.lm, e.lm_loss, LOSS_RTOL, 'lm loss');
      assertClose(parts.z, e.z_loss, LOSS_RTOL, 'z loss');
      // A dense model has no aux loss at all: it must be 0.
      assertClose(parts.aux, e.aux_loss, LOSS_RTOL, 'aux loss', e.aux_loss === 0 ? 0 : 1e-12);
      assertClose(parts.total, e.total_loss, LOSS_RTOL, 'total loss');

      assert.equal(parts.moe.length, e.moe_layers.length, 'number of MoE layers reported');
      e.moe_layers.forEach((want, i) => {
        const got = parts.moe[i];
        const where = `MoE layer ${want.layer}`;
        assert.equal(got.layer, want.layer, `${where}: layer index`);
        assert.equal(got.dropped, want.dropped, `${where}: dropped`);
        assertClose(got.droppedFraction, want.dropped_fraction, 1e-9, `${where}: droppedFraction`, 1e-12);
        assertClose(got.aux, want.aux, LOSS_RTOL, `${where}: aux`);
        assertClose(got.routerEntropy, want.router_entropy, LOSS_RTOL, `${where}: routerEntropy`);
        // docs/model.md "Load and drop statistics": load is what each expert kept, routedLoad what
        // reached it before capacity (the oracle's load_kept and load).
        assert.deepEqual(got.load, want.load_kept, `${where}: load (kept)`);
        assert.deepEqual(got.routedLoad, want.load, `${where}: routedLoad (before capacity)`);
        const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
        assert.equal(sum(got.routedLoad) - sum(got.load), got.dropped, `${where}: dropped = routed − kept`);
      });
    });

    test('gradients of the total loss with respect to every parameter', () => {
      const c = loadCase(root, name);
      const e = c.expected;
      const ref = readF32Safetensors(join(c.dir, e.grads_file));
      const model = new GlamModel(c.config);
      const ws = model.workspace();
      const grads = Grads.like(c.weights);
      const batch = { inputs: c.inputs, targets: c.targets, batch: c.B, seqLen: c.T };
      model.forward(c.weights, ws, batch, { capacityFactor: e.capacity_factor });
      model.backward(c.weights, grads, ws);

      assert.deepEqual([...grads.keys()].sort(), [...ref.keys()].sort(), 'gradient names');
      for (const [pname, want] of ref) {
        // The fixture's own summary agrees with its full gradient (guards the fixture files).
        const summary = e.grads[pname];
        for (const [idx, value] of summary.sample) {
          assertClose(want.data[idx], value, 1e-6, `fixture ${pname}[${idx}]`, 1e-30);
        }
        const got = grads.get(pname);
        assert.deepEqual([...got.shape], want.shape, `${pname}: gradient shape`);
        let maxRef = 0;
        let maxErr = 0;
        let errSq = 0;
        let refSq = 0;
        let worst = 0;
        for (let i = 0; i < want.data.length; i++) {
          const r = want.data[i];
          const d = got.data[i] - r;
          maxRef = Math.max(maxRef, Math.abs(r));
          if (!(Math.abs(d) <= maxErr)) {
            maxErr = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.abs(d);
            worst = i;
          }
          errSq += d * d;
          refSq += r * r;
        }
        const floor = 1e-7; // a tensor whose gradient is all zero must stay (near) zero
        assert.ok(
          maxErr <= GRAD_TOL * maxRef + floor,
          `${pname}: max |grad - ref| ${maxErr.toExponential(3)} at flat index ${worst} ` +
            `(got ${got.data[worst]}, ref ${want.data[worst]}) exceeds ${GRAD_TOL} · max|ref| ${maxRef.toExponential(3)}`,
        );
        assert.ok(
          Math.sqrt(errSq) <= GRAD_TOL * Math.sqrt(refSq) + floor,
          `${pname}: relative L2 error ${(Math.sqrt(errSq) / Math.sqrt(refSq)).toExponential(3)} exceeds ${GRAD_TOL}`,
        );
      }
    });
  });
}
