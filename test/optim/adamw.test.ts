import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdamW } from '../../src/optim/adamw.js';
import { assertClose, params, randomParams, tensor } from './helpers.js';

describe('AdamW by hand', () => {
  it('two steps with bias correction (β1 0.9, β2 0.999, ε 1e-8, no decay)', () => {
    const p = params([['b', tensor([1, 1], [2])]]);
    const opt = new AdamW(p, { weightDecay: 0 });
    const lr = 0.1;
    // Step 1: m = 0.1 g, v = 0.001 g²; corrected m̂ = g, v̂ = g², so u = g / (|g| + ε) ≈ sign(g).
    opt.step(p, params([['b', tensor([0.5, -2], [2])]]), lr);
    const after1 = [1 - lr * (0.5 / (0.5 + 1e-8)), 1 + lr * (2 / (2 + 1e-8))];
    assertClose(p.get('b')!.data, after1, 1e-7, 'step 1');
    // Step 2, g = [1, 1]:
    //   m = 0.9·0.1·[0.5, −2] + 0.1·1 = [0.145, −0.08],  m̂ = m / (1 − 0.81) = m / 0.19
    //   v = 0.999·0.001·[0.25, 4] + 0.001·1 = [0.00124975, 0.004996],  v̂ = v / (1 − 0.998001) = v / 0.001999
    const mHat = [0.145 / 0.19, -0.08 / 0.19];
    const vHat = [0.00124975 / 0.001999, 0.004996 / 0.001999];
    const u = mHat.map((m, k) => m / (Math.sqrt(vHat[k]!) + 1e-8));
    assertClose(u, [0.965182, -0.266337], 1e-6, 'u by hand');
    opt.step(p, params([['b', tensor([1, 1], [2])]]), lr);
    assertClose(p.get('b')!.data, [after1[0]! - lr * u[0]!, after1[1]! - lr * u[1]!], 1e-7, 'step 2');
    assertClose(opt.stateTensors().get('b.m')!.data, [0.145, -0.08], 1e-7, 'm');
    assertClose(opt.stateTensors().get('b.v')!.data, [0.00124975, 0.004996], 1e-6, 'v');
  });

  it('without bias correction the first step would be ~3x smaller: the correction is applied', () => {
    const p = params([['b', tensor([0], [1])]]);
    new AdamW(p, { weightDecay: 0 }).step(p, params([['b', tensor([1], [1])]]), 1);
    // Uncorrected: 0.1 / sqrt(0.001) = 3.16; corrected: 1.
    assertClose(p.get('b')!.data, [-1], 1e-7);
  });

  it('decays matrices (decoupled, scaled by lr) and not vectors, by default', () => {
    const p = params([
      ['w', tensor([2, -3], [1, 2])],
      ['s', tensor([2, -3], [2])],
    ]);
    const g = params([
      ['w', tensor([1, -1], [1, 2])],
      ['s', tensor([1, -1], [2])],
    ]);
    const lr = 0.1;
    new AdamW(p, { weightDecay: 0.5 }).step(p, g, lr);
    const u = 1 / (1 + 1e-8);
    assertClose(p.get('w')!.data, [2 - lr * 0.5 * 2 - lr * u, -3 - lr * 0.5 * -3 + lr * u], 1e-7, 'w');
    assertClose(p.get('s')!.data, [2 - lr * u, -3 + lr * u], 1e-7, 's');
  });

  it('agrees with a plain float64 AdamW over several steps', () => {
    const p = randomParams([['w', [3, 4]]], 1);
    const ref = Array.from(p.get('w')!.data);
    const m = ref.map(() => 0);
    const v = ref.map(() => 0);
    const [b1, b2, eps, wd] = [0.8, 0.99, 1e-6, 0.1];
    const opt = new AdamW(p, { beta1: b1, beta2: b2, epsilon: eps, weightDecay: wd });
    for (let t = 1; t <= 5; t++) {
      const g = randomParams([['w', [3, 4]]], 10 + t);
      const lr = 0.05 / t;
      opt.step(p, g, lr);
      g.get('w')!.data.forEach((gk, k) => {
        m[k] = b1 * m[k]! + (1 - b1) * gk;
        v[k] = b2 * v[k]! + (1 - b2) * gk * gk;
        const mh = m[k]! / (1 - b1 ** t);
        const vh = v[k]! / (1 - b2 ** t);
        ref[k] = ref[k]! * (1 - lr * wd) - (lr * mh) / (Math.sqrt(vh) + eps);
      });
    }
    assertClose(p.get('w')!.data, ref, 2e-6, 'θ');
    assert.equal(opt.stepCount, 5);
  });

  it('refuses bad options', () => {
    const p = params([['b', tensor([0], [1])]]);
    assert.throws(() => new AdamW(p, { beta1: 1 }), /beta1/);
    assert.throws(() => new AdamW(p, { epsilon: 0 }), /epsilon/);
    assert.throws(() => new AdamW(p, { weightDecay: -1 }), /weightDecay/);
  });
});
