/** Research sweeps: plans, the analysis of run metrics, and `glam sweep` end to end on tiny runs. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BUILTIN_PLANS,
  builtinPlan,
  type CurvePoint,
  crossingTokens,
  curvePanels,
  loadPlanFile,
  pairedGaps,
  type ResearchRun,
  routingTail,
} from '../../src/train/sweep.js';
import { prepareBookDataset } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, '../../../bin/glam.js');
const root = mkdtempSync(path.join(tmpdir(), 'glam-sweep-'));
const data = path.join(root, 'data');

function glam(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const pts = (vals: number[]): CurvePoint[] =>
  vals.map((v, i) => ({ step: (i + 1) * 10, tokens: (i + 1) * 1000, valLm: v }));

test('crossing: the first point from which the second curve stays below the first', () => {
  assert.equal(
    crossingTokens(pts([5, 4, 3, 2]), pts([6, 3.9, 3.1, 1.9])),
    4000,
    'dips back above at step 30',
  );
  assert.equal(crossingTokens(pts([5, 4, 3]), pts([4.9, 3.9, 2.9])), 1000);
  assert.equal(crossingTokens(pts([5, 4, 3]), pts([5.1, 4.1, 3])), null, 'equal is not below');
  // Only the steps both runs logged are compared.
  assert.equal(crossingTokens(pts([5, 4, 3]), pts([6, 3]).slice(0, 1)), null);
});

test("sweep plots: colour for the variant, line style for the seed, MoE minus its own seed's dense run", () => {
  const curve = (losses: number[]): CurvePoint[] =>
    losses.map((valLm, i) => ({ step: (i + 1) * 100, tokens: (i + 1) * 102_400, valLm }));
  const run = (label: string, seed: number, dense: boolean, losses: number[]) => ({
    label,
    curve: curve(losses),
    flopsPerToken: dense ? 3e7 : 2.7e7,
    seed,
    variant: dense ? 'dense' : 'moe',
    dense,
    dataset: 'default',
  });
  const panels = curvePanels('small vs small-moe', [
    run('small (dense), seed 1', 1, true, [7, 6, 5, 4.8, 4.6, 4.5, 4.45, 4.4]),
    run('small-moe, seed 1', 1, false, [7, 6.1, 5, 4.8, 4.6, 4.4, 4.4, 4.38]),
    run('small (dense), seed 2', 2, true, [7, 6, 5.1, 4.9, 4.7, 4.6, 4.55, 4.5]),
    run('small-moe, seed 2', 2, false, [7, 6, 5.1, 4.9, 4.7, 4.7, 4.6, 4.49]),
  ]);
  assert.equal(panels.length, 3);
  const [byTokens, , diff] = panels;
  // Same colour within a variant, a different one across; seeds differ in line style only.
  const [d1, m1, d2, m2] = byTokens!.series;
  assert.equal(d1!.color, d2!.color);
  assert.equal(m1!.color, m2!.color);
  assert.notEqual(d1!.color, m1!.color);
  assert.equal(d1!.dash, m1!.dash);
  assert.notEqual(d1!.dash, d2!.dash);
  assert.deepEqual(
    byTokens!.legend!.map((e) => e.label),
    ['small (dense)', 'small-moe', 'seed 1', 'seed 2'],
  );
  // The difference panel: one series per MoE run, against the dense run of its own seed.
  assert.deepEqual(
    diff!.series.map((s) => s.points.map(([, y]) => Number(y.toFixed(6)))),
    [
      [0, 0.1, 0, 0, 0, -0.1, -0.05, -0.02],
      [0, 0, 0, 0, 0, 0.1, 0.05, -0.01],
    ],
  );
  assert.deepEqual(
    diff!.legend!.map((e) => e.label),
    ['small-moe', 'seed 1', 'seed 2'],
  );
  // The y range shows the later part of the run (and zero for the differences), not the first steps.
  assert.ok(byTokens!.yRange![1] < 6.5 && byTokens!.yRange![0] < 4.38, `range ${byTokens!.yRange}`);
  assert.ok(diff!.yRange![0] < -0.05 && diff!.yRange![1] > 0.1, `range ${diff!.yRange}`);
});

test('paired gaps: each MoE variant against the dense run of its seed and data, mean and spread over seeds', () => {
  const r = (label: string, variant: string, seed: number, valLoss: number, dataset = 'default') => ({
    label,
    variant,
    seed,
    dataset,
    dense: variant === 'dense',
    valLoss,
  });
  const gaps = pairedGaps([
    r('dense, seed 1', 'dense', 1, 4.4),
    r('dense, seed 2', 'dense', 2, 4.5),
    r('MoE, seed 1', 'moe', 1, 4.38),
    r('MoE, seed 2', 'moe', 2, 4.54),
    r('MoE, seed 3', 'moe', 3, 4.1), // no dense run of seed 3: not paired
    r('wide MoE, seed 1', 'wide', 1, 4.3, 'other'), // another dataset: not paired
  ]);
  assert.equal(gaps.length, 1);
  const [g] = gaps;
  assert.equal(g!.label, 'MoE');
  assert.deepEqual(
    g!.gaps.map((x) => [x.seed, Number(x.gap.toFixed(9))]),
    [
      [1, -0.02],
      [2, 0.04],
    ],
  );
  assert.ok(Math.abs(g!.mean - 0.01) < 1e-12);
  assert.ok(Math.abs(g!.sd! - Math.sqrt(0.0018)) < 1e-12);
});

test('routing tail: means over the last 100 steps, the least-loaded expert of any layer', () => {
  const routing = [50, 150, 200].map((step) => ({
    step,
    minLoad: step === 50 ? [0.1, 0.1] : [0.8, 0.6],
    droppedFraction: step === 50 ? [0.5, 0.5] : [0.1, 0.05],
    routerEntropy: [2, 2],
  }));
  const tail = routingTail(routing)!;
  assert.equal(tail.minLoad, 0.6);
  assert.ok(Math.abs(tail.dropped - 0.075) < 1e-12);
  assert.equal(routingTail([]), undefined);
});

test('built-in plans: research is the union of the others, run names unique, shared runs identical', () => {
  const research = builtinPlan('research');
  const names = research.runs.map((r) => r.name);
  assert.equal(new Set(names).size, names.length);
  for (const p of BUILTIN_PLANS.filter((x) => x !== 'research')) {
    for (const r of builtinPlan(p).runs) {
      assert.deepEqual(
        research.runs.find((x) => x.name === r.name),
        r,
      );
    }
  }
  // The experts experiment varies only the number of experts around the dense model.
  const experts = research.experiments.find((e) => e.id === 'experts')!;
  assert.deepEqual(
    experts.runs.map((r) => r.label),
    ['dense', '4E', '8E', '16E', '32E', '64E'],
  );
  assert.throws(() => builtinPlan('nope'), /unknown sweep plan 'nope'/);
});

test('plan files: bad plans are refused with the file and the problem named', () => {
  const file = path.join(root, 'bad.json');
  writeFileSync(
    file,
    JSON.stringify({ tokens: 10, batch: 1, seqLen: 8, evalEvery: 1, evalBatches: 1, runs: [] }),
  );
  assert.throws(() => loadPlanFile(file), /bad\.json: 'runs' must be a non-empty array/);
  writeFileSync(
    file,
    JSON.stringify({
      tokens: 10,
      batch: 1,
      seqLen: 8,
      evalEvery: 1,
      evalBatches: 1,
      runs: [{ name: 'a/b', preset: 'tiny' }],
    }),
  );
  assert.throws(() => loadPlanFile(file), /run name "a\/b" must be/);
});

before(() => {
  prepareBookDataset(root, data, {
    seed: 7,
    words: 'a small ship sailed on the calm grey sea at dawn with nine old men aboard',
    docs: 60,
    wordsPerDoc: 50,
    heading: 'Part',
  });
});

after(() => rmSync(root, { recursive: true, force: true }));

test('glam sweep: trains each run once, reports research.json and plots, resumes and refuses a changed spec', () => {
  const plan = {
    name: 'tiny',
    tokens: 6 * 2 * 16,
    batch: 2,
    seqLen: 16,
    evalEvery: 2,
    evalBatches: 2,
    runs: [
      { name: 'dense', label: 'dense', preset: 'tiny', seed: 1 },
      { name: 'moe', label: 'MoE', preset: 'tiny-moe', seed: 1, overrides: { capacity_factor: 0 } },
    ],
    experiments: [
      {
        id: 'runs',
        title: 'tiny',
        runs: [
          { name: 'dense', label: 'dense' },
          { name: 'moe', label: 'MoE' },
        ],
        judgedOn: { dataset: 'default', categories: ['books'] },
      },
    ],
  };
  const planFile = path.join(root, 'plan.json');
  writeFileSync(planFile, JSON.stringify(plan));
  const out = path.join(root, 'sweep');
  const args = ['sweep', '--plan', planFile, '--out', out, '--data', data, '--jobs', '2', '--threads', '1'];
  const r = glam(...args);
  assert.equal(r.code, 0, r.stderr);
  const research = JSON.parse(readFileSync(path.join(out, 'research.json'), 'utf8')) as {
    runs: ResearchRun[];
    crossings: { dense: string; moe: string; tokens: number | null }[];
    paired: { label: string; gaps: { seed: number; gap: number }[] }[];
  };
  assert.deepEqual(
    research.runs.map((x) => [x.name, x.n_experts, x.tokens, x.seed]),
    [
      ['dense', 0, 192, 1],
      ['moe', 8, 192, 1],
    ],
  );
  for (const x of research.runs) {
    assert.ok(Number.isFinite(x.val_loss) && x.val_loss > 0, `${x.name} val_loss ${x.val_loss}`);
    assert.ok(x.total_params >= x.active_params && x.train_flops > 0);
  }
  assert.equal(research.runs[1]!.dropped_fraction_last100, 0, 'dropless');
  // Judged on the books validation text (the only category here): the final validation loss.
  const judged = JSON.parse(readFileSync(path.join(out, 'runs', 'dense', 'judged.json'), 'utf8'));
  assert.equal(judged.loss, research.runs[0]!.val_loss);
  assert.ok(judged.tokens > 0);
  assert.equal(research.crossings.length, 1);
  assert.ok(existsSync(path.join(out, 'runs.svg')));
  assert.match(readFileSync(path.join(out, 'summary.md'), 'utf8'), /\| dense \| 0 \|/);
  // The paired final gap: the MoE's final validation loss minus the dense run's, same seed.
  assert.equal(research.paired.length, 1);
  assert.equal(research.paired[0]!.gaps[0]!.gap, research.runs[1]!.val_loss - research.runs[0]!.val_loss);
  assert.match(readFileSync(path.join(out, 'summary.md'), 'utf8'), /\| MoE \| 1 \| [+-]\d\.\d{4} \(s1\) \|/);
  assert.match(r.stdout, /validation loss|val loss/);

  // Again: nothing to train.
  const again = glam(...args);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /2 runs, 2 already finished; 0 to train/);

  // Another budget under the same --out would silently mix specs: refused, nothing removed.
  const changed = glam(...args, '--tokens', '64');
  assert.equal(changed.code, 1);
  assert.match(changed.stderr, /was trained with another spec/);
  assert.ok(existsSync(path.join(out, 'runs', 'dense', 'metrics.jsonl')));
});
