import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Params } from '../../src/model/params.js';
import { createOptimizer, type OptimizerConfig } from '../../src/optim/create.js';
import { type Optimizer, optimizerMetadata, restoreOptimizer } from '../../src/optim/optimizer.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { assertBitEqual, cloneParams, randomParams, roundTripThroughBytes } from './helpers.js';

const SHAPES: [string, number[]][] = [
  ['embed.weight', [6, 4]],
  ['layers.0.attn_norm.scale', [4]],
  ['layers.0.moe.wi', [3, 4, 5]],
  ['layers.0.moe.router', [4, 3]],
];

const gradsAt = (step: number): Params => randomParams(SHAPES, 1000 + step, step % 2 ? 0.1 : 2);

function train(opt: Optimizer, p: Params, from: number, to: number): void {
  for (let s = from; s < to; s++) opt.step(p, gradsAt(s), 0.01 * Math.sqrt(1 / (s + 1)));
}

const CONFIGS: OptimizerConfig[] = [{ kind: 'adafactor' }, { kind: 'adamw', weightDecay: 0.1 }];

for (const config of CONFIGS) {
  describe(`${config.kind} state save/load`, () => {
    it('a restored optimizer continues bit-for-bit like an uninterrupted one', () => {
      const start = randomParams(SHAPES, 1);
      const straight = cloneParams(start);
      const straightOpt = createOptimizer(straight, config);
      train(straightOpt, straight, 0, 8);

      const first = cloneParams(start);
      const firstOpt = createOptimizer(first, config);
      train(firstOpt, first, 0, 4);
      const savedTensors = roundTripThroughBytes(firstOpt.stateTensors());
      const savedMeta = JSON.parse(JSON.stringify(optimizerMetadata(firstOpt))) as Record<string, string>;
      const savedParams = roundTripThroughBytes(first);

      const resumedOpt = createOptimizer(savedParams, config);
      restoreOptimizer(resumedOpt, savedTensors, savedMeta);
      assert.equal(resumedOpt.stepCount, 4);
      train(resumedOpt, savedParams, 4, 8);

      assertBitEqual(savedParams, straight, 'θ');
      assertBitEqual(resumedOpt.stateTensors(), straightOpt.stateTensors(), 'state');
    });

    it('without the saved state the continuation differs (the check can fail)', () => {
      const p = randomParams(SHAPES, 1);
      const opt = createOptimizer(p, config);
      train(opt, p, 0, 4);
      const a = cloneParams(p);
      const b = cloneParams(p);
      train(opt, a, 4, 6);
      const fresh = createOptimizer(b, config);
      fresh.stepCount = 4; // right step count, but zeroed moments
      train(fresh, b, 4, 6);
      assert.throws(() => assertBitEqual(a, b, 'θ'));
    });

    it('refuses state that does not match', () => {
      const p = randomParams(SHAPES, 1);
      const opt = createOptimizer(p, config);
      const state = opt.stateTensors();
      const meta = optimizerMetadata(opt);
      const [firstName, firstTensor] = [...state][0]!;

      const missing = new Map(state);
      missing.delete(firstName);
      assert.throws(() => restoreOptimizer(opt, missing, meta), new RegExp(`'${firstName}' is missing`));

      const extra = new Map(state).set('nonsense.v', Tensor.zeros([1]));
      assert.throws(() => restoreOptimizer(opt, extra, meta), /unexpected state tensor 'nonsense.v'/);

      const misshapen = new Map(state).set(firstName, Tensor.zeros([firstTensor.size + 1]));
      assert.throws(() => restoreOptimizer(opt, misshapen, meta), /has shape/);

      const other = config.kind === 'adafactor' ? 'adamw' : 'adafactor';
      assert.throws(() => restoreOptimizer(opt, state, { ...meta, optimizer: other }), /this run uses/);
      assert.throws(() => restoreOptimizer(opt, state, { optimizer: config.kind, step: '-1' }), /'step'/);
      assert.throws(() => restoreOptimizer(opt, state, { optimizer: config.kind }), /'step'/);
    });

    it('loads by copying, so the source buffers can be freed or reused', () => {
      const p = randomParams(SHAPES, 1);
      const opt = createOptimizer(p, config);
      const saved = new Map([...opt.stateTensors()].map(([k, t]) => [k, t.clone().fill(0.5)]));
      opt.loadStateTensors(saved);
      for (const t of saved.values()) t.fill(7);
      for (const t of opt.stateTensors().values()) assert.ok(t.data.every((x) => x === 0.5));
    });
  });
}
