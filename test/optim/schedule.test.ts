import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cooldownOver, GLAM_SCHEDULE, type LrSchedule, learningRate } from '../../src/optim/schedule.js';
import { assertClose } from './helpers.js';

describe('GLaM inverse square root schedule', () => {
  it('is 0.01 up to step 10000, then 0.01·sqrt(10000/t)', () => {
    const at = (t: number) => learningRate(GLAM_SCHEDULE, t);
    assert.equal(at(1), 0.01);
    assert.equal(at(5000), 0.01);
    assert.equal(at(10000), 0.01);
    assertClose([at(10001)], [0.01 * Math.sqrt(10000 / 10001)], 1e-15);
    assertClose([at(40000)], [0.005], 1e-15);
    assertClose([at(1_000_000)], [0.001], 1e-15);
  });

  it('warms up linearly from 0 over warmup_steps', () => {
    const s: LrSchedule = { kind: 'rsqrt', peak_lr: 0.02, warmup_steps: 1000, decay_start: 10000 };
    assert.equal(learningRate(s, 0), 0);
    assertClose([learningRate(s, 1)], [0.02 / 1000], 1e-15);
    assertClose([learningRate(s, 500)], [0.01], 1e-15);
    assert.equal(learningRate(s, 1000), 0.02);
    assert.equal(learningRate(s, 9000), 0.02);
    assertClose([learningRate(s, 40000)], [0.01], 1e-15);
  });
});

describe('constant and cosine schedules', () => {
  it('constant, with warm-up', () => {
    const s: LrSchedule = { kind: 'constant', peak_lr: 0.3, warmup_steps: 10 };
    assertClose([learningRate(s, 5), learningRate(s, 10), learningRate(s, 1e6)], [0.15, 0.3, 0.3], 1e-15);
  });

  it('cosine goes from peak at the end of warm-up to min_lr at total_steps', () => {
    const s: LrSchedule = { kind: 'cosine', peak_lr: 1, warmup_steps: 10, total_steps: 110, min_lr: 0.1 };
    assertClose(
      [5, 10, 60, 110, 500].map((t) => learningRate(s, t)),
      [0.5, 1, 0.55, 0.1, 0.1],
      1e-12,
    );
  });

  it('refuses a negative or non-finite step', () => {
    assert.throws(() => learningRate(GLAM_SCHEDULE, -1), /step/);
    assert.throws(() => learningRate(GLAM_SCHEDULE, Number.NaN), /step/);
  });
});

describe('cool-down', () => {
  it('scales the rate down in equal steps after its start, on top of the decay', () => {
    const s: LrSchedule = {
      kind: 'rsqrt',
      peak_lr: 0.03,
      warmup_steps: 0,
      decay_start: 4,
      cooldown: { start: 16, total_steps: 19 },
    };
    const decay = (t: number) => 0.03 * Math.sqrt(4 / t);
    assertClose(
      [2, 16, 17, 18, 19, 20].map((t) => learningRate(s, t)),
      [0.03, decay(16), decay(17) * 0.75, decay(18) * 0.5, decay(19) * 0.25, 0],
      1e-15,
    );
  });

  it('cooldownOver places it over the last fraction of a run', () => {
    assert.deepEqual(cooldownOver(0.2, 2540), { start: 2032, total_steps: 2540 });
    assert.equal(cooldownOver(0, 100), undefined);
    assert.throws(() => cooldownOver(1, 100), /fraction/);
    assert.throws(() => cooldownOver(0.2, 0), /length/);
  });
});
