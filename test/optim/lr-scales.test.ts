import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseLrScaleOption } from '../../src/cli/train.js';
import { lrScalesByKind, paramSpecs } from '../../src/model/params.js';
import { resolveConfig } from '../../src/model/presets.js';
import { Adafactor, type AdafactorOptions } from '../../src/optim/adafactor.js';
import { AdamW } from '../../src/optim/adamw.js';
import type { Optimizer } from '../../src/optim/optimizer.js';
import { assertBitEqual, cloneParams, randomParams } from './helpers.js';

const SHAPES: [string, number[]][] = [
  ['w', [4, 3]],
  ['e', [2, 3, 5]],
  ['b', [3]],
];

/** Three steps of `make()`'s optimizer at rates lrs; returns the parameters. */
function train(make: (p: ReturnType<typeof randomParams>) => Optimizer, lrs: number[]) {
  const p = randomParams(SHAPES, 1, 0.5);
  const opt = make(p);
  for (const [i, lr] of lrs.entries()) opt.step(p, randomParams(SHAPES, 10 + i), lr);
  return p;
}

describe('learning-rate scales by parameter', () => {
  const lrs = [0.03, 0.02, 0.01];
  const cases: [
    string,
    (o: { lrScales?: Record<string, number> }) => (p: ReturnType<typeof randomParams>) => Optimizer,
  ][] = [
    [
      'Adafactor',
      (o) => (p) =>
        new Adafactor(p, { multiplyByParameterScale: true, weightDecay: 0.1, ...o } as AdafactorOptions),
    ],
    ['AdamW', (o) => (p) => new AdamW(p, o)],
  ];
  for (const [name, make] of cases) {
    it(`${name}: a scaled parameter steps exactly as at the scaled rate, the others as before`, () => {
      const scaled = train(make({ lrScales: { e: 2.5 } }), lrs);
      const plain = train(make({}), lrs);
      const atScaledRate = train(
        make({}),
        lrs.map((lr) => lr * 2.5),
      );
      assertBitEqual(new Map([['e', scaled.get('e')!]]), new Map([['e', atScaledRate.get('e')!]]), 'e');
      for (const other of ['w', 'b']) {
        assertBitEqual(new Map([[other, scaled.get(other)!]]), new Map([[other, plain.get(other)!]]), other);
      }
      assert.notDeepEqual(scaled.get('e')!.data, plain.get('e')!.data);
    });

    it(`${name}: a scale of 0 freezes the parameter; bad names and values are refused`, () => {
      const start = randomParams(SHAPES, 1, 0.5);
      const frozen = train(make({ lrScales: { w: 0 } }), lrs);
      assertBitEqual(new Map([['w', frozen.get('w')!]]), new Map([['w', cloneParams(start).get('w')!]]), 'w');
      assert.throws(
        () => make({ lrScales: { nope: 1 } })(start),
        /lrScales names 'nope', which is not a parameter/,
      );
      assert.throws(() => make({ lrScales: { w: -1 } })(start), /lrScales\['w'\] must be finite and >= 0/);
    });
  }
});

describe('glam train --lr-scale', () => {
  it('parses KIND=X lists and names what is wrong', () => {
    assert.deepEqual(parseLrScaleOption('router=3,expert=0.5'), { router: 3, expert: 0.5 });
    assert.throws(() => parseLrScaleOption('routers=3'), /unknown kind 'routers'/);
    assert.throws(() => parseLrScaleOption('router'), /'router' is not KIND=X/);
    assert.throws(() => parseLrScaleOption('router=1,router=2'), /given twice/);
    assert.throws(() => parseLrScaleOption('router=-1'), /must be >= 0/);
  });

  it('expands kinds to every parameter of that kind in the model', () => {
    const cfg = resolveConfig('small-moe');
    const scales = lrScalesByKind(cfg, { router: 3, expert: 0.5 });
    const specs = paramSpecs(cfg);
    for (const s of specs) {
      const want = s.kind === 'router' ? 3 : s.kind === 'expert' ? 0.5 : undefined;
      assert.equal(scales[s.name], want, s.name);
    }
    assert.equal(
      Object.keys(scales).length,
      specs.filter((s) => s.kind === 'router' || s.kind === 'expert').length,
    );
  });
});
