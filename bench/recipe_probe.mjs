#!/usr/bin/env node
/**
 * The recipe investigation's probe (docs/results.md, "Recipe"): trains one model with the same step as
 * `glam train` (train/step.ts) on a prepared dataset, and logs every 50 steps the training loss, the
 * dropped fraction, the router entropy, the least-loaded expert per MoE layer and the gradient norm,
 * plus the validation loss and the RMS of each kind of weight at every --eval-every. Where `glam sweep`
 * compares finished recipes, this looks inside one: optimiser variants, initialisation scales and
 * learning rates that `glam train` has no option for.
 *
 *   node bench/recipe_probe.mjs run '{"name": "dense", "preset": "small", "steps": 1500, "lr": 0.03,
 *        "opt": {"multiplyByParameterScale": true}, "evalEvery": 100}' --data data/default --out logs/
 *   node bench/recipe_probe.mjs plot logs/ out.svg dense 'moe16=MoE, 16 experts'   # curves of logged runs
 *
 * The spec's keys: preset, config (overrides), steps, seed (1), batch (8), seq (128), lr (peak of the
 * GLaM schedule, 0.01), warmup, decayStart, opt (Adafactor options), initScale
 * ({kind or tensor name: factor}), evalEvery (200), evalBatches (16), evalCf (validation capacity
 * factor; the config's by default), threads (1).
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const dist = new URL('../dist/src/', import.meta.url);
const lib = async (m) => import(new URL(m, dist).href);
const { openDataset, toBatch } = await lib('data/dataset.js');
const { getPreset } = await lib('model/presets.js');
const { parseConfig } = await lib('model/config.js');
const { initParams } = await lib('model/init.js');
const { paramSpecs } = await lib('model/params.js');
const { GlamModel } = await lib('model/glam.js');
const { newStepContext, trainStep } = await lib('train/step.js');
const { Rng } = await lib('util/rng.js');
const { kernels } = await lib('backend/index.js');
const { renderSvg } = await lib('train/plot.js');

function option(args, name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}

const rms = (d) => {
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i] * d[i];
  return Math.sqrt(s / d.length);
};

async function run(spec, dataDir, outDir) {
  const a = JSON.parse(spec);
  if (typeof a.name !== 'string' || !/^[\w.-]+$/.test(a.name))
    throw new Error('the spec needs a "name" (letters, digits, . _ -)');
  const seed = a.seed ?? 1;
  const steps = a.steps ?? 800;
  const [B, T] = [a.batch ?? 8, a.seq ?? 128];
  const ds = openDataset(dataDir);
  const cfg = parseConfig({
    ...getPreset(a.preset ?? 'small'),
    vocab_size: ds.tokenizer.vocabSize,
    ...(a.config ?? {}),
  });
  kernels().setThreads(a.threads ?? 1);
  const weights = initParams(cfg, seed);
  const specs = paramSpecs(cfg);
  for (const s of specs) {
    const f = a.initScale?.[s.kind] ?? a.initScale?.[s.name];
    if (f === undefined) continue;
    const d = weights.get(s.name).data;
    for (let i = 0; i < d.length; i++) d[i] *= f;
  }
  const model = new GlamModel(cfg);
  const ctx = newStepContext(
    model,
    weights,
    { kind: 'adafactor', ...(a.opt ?? {}) },
    {
      kind: 'rsqrt',
      peak_lr: a.lr ?? 0.01,
      warmup_steps: a.warmup ?? 0,
      decay_start: a.decayStart ?? 10000,
    },
  );
  const pos = ds.initialPosition(seed);
  const val = [...ds.validationBatches(B, T, { maxBatches: a.evalBatches ?? 16 })].map(toBatch);
  const rng = new Rng(seed);
  mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, `${a.name}.jsonl`);
  writeFileSync(out, '');
  // RMS per kind of weight (expert, router, attention projection, ...), averaged over layers.
  const kindRms = () => {
    const acc = {};
    for (const s of specs) {
      const k = s.name.includes('.moe.')
        ? `moe.${s.name.split('.').pop()}`
        : s.kind === 'projection'
          ? s.name.split('.').slice(2).join('.')
          : s.kind;
      if (acc[k] === undefined) acc[k] = [];
      acc[k].push(rms(weights.get(s.name).data));
    }
    return Object.fromEntries(
      Object.entries(acc).map(([k, v]) => [k, +(v.reduce((x, y) => x + y) / v.length).toFixed(4)]),
    );
  };
  const validate = () => {
    const r = new Rng(0);
    let lm = 0;
    for (const b of val)
      lm += model.forward(weights, ctx.ws, b, { rng: r, capacityFactor: a.evalCf ?? cfg.capacity_factor }).lm;
    return lm / val.length;
  };
  let [lm, n, drop, ent] = [0, 0, 0, 0];
  const t0 = performance.now();
  for (let step = 1; step <= steps; step++) {
    const r = trainStep(ctx, [toBatch(ds.nextBatch(pos, B, T))], { forward: { rng } });
    const p = r.parts[0];
    lm += p.lm;
    n++;
    if (p.moe.length > 0) {
      drop += p.moe.reduce((s, m) => s + m.droppedFraction, 0) / p.moe.length;
      ent += p.moe.reduce((s, m) => s + m.routerEntropy, 0) / p.moe.length;
    }
    const evalNow = step % (a.evalEvery ?? 200) === 0 || step === steps;
    if (step % 50 !== 0 && !evalNow) continue;
    const rec = {
      step,
      tokens: step * B * T,
      lm: +(lm / n).toFixed(4),
      drop: +(drop / n).toFixed(4),
      ent: +(ent / n).toFixed(3),
      gnorm: +Math.sqrt(r.gradSumSquares).toFixed(3),
      s: Math.round((performance.now() - t0) / 1000),
    };
    if (evalNow) Object.assign(rec, { val: +validate().toFixed(4), rms: kindRms() });
    // The least-loaded expert of each MoE layer, as a fraction of the mean load (this step).
    if (p.moe.length > 0)
      rec.load = p.moe.map((m) => {
        const total = m.load.reduce((x, y) => x + y, 0) || 1;
        return +Math.min(...m.load.map((x) => (x * m.load.length) / total)).toFixed(2);
      });
    appendFileSync(out, `${JSON.stringify(rec)}\n`);
    [lm, n, drop, ent] = [0, 0, 0, 0];
  }
  ds.close();
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

/** Curves of logged runs; each run is NAME or NAME=LEGEND LABEL. */
function plot(logDir, outFile, runs) {
  const names = runs.map((r) => r.split('=')[0]);
  const labels = runs.map((r) => r.split('=').slice(1).join('=') || r);
  const logs = names.map((name) =>
    readFileSync(path.join(logDir, `${name}.jsonl`), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l)),
  );
  const series = (key, pick) =>
    logs.map((recs, i) => ({
      label: labels[i],
      color: COLORS[i % COLORS.length],
      points: recs.filter(pick).map((r) => [r.tokens, r[key]]),
    }));
  const moe = logs.map((recs) => recs.some((r) => r.ent > 0));
  const panels = [
    {
      title: 'validation loss',
      xLabel: 'tokens',
      yLabel: 'loss (nats)',
      series: series('val', (r) => r.val !== undefined),
    },
    {
      title: 'training loss (mean of 50 steps)',
      xLabel: 'tokens',
      yLabel: 'loss (nats)',
      series: series('lm', () => true),
    },
  ];
  if (moe.some(Boolean)) {
    const onlyMoe = (s) => s.filter((_, i) => moe[i]);
    panels.push(
      {
        title: 'dropped fraction',
        xLabel: 'tokens',
        yLabel: 'fraction',
        series: onlyMoe(series('drop', () => true)),
      },
      {
        title: 'router entropy (mean over layers)',
        xLabel: 'tokens',
        yLabel: 'nats',
        series: onlyMoe(series('ent', () => true)),
      },
    );
  }
  writeFileSync(outFile, renderSvg(panels));
}

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === 'run' && rest[0] !== undefined) {
  await run(rest[0], option(rest, '--data', 'data/default'), option(rest, '--out', 'runs/recipe-probe'));
} else if (cmd === 'plot' && rest.length >= 3) {
  plot(rest[0], rest[1], rest.slice(2));
} else {
  console.error(
    "usage: recipe_probe.mjs run 'SPEC_JSON' [--data DIR] [--out DIR] | plot LOG_DIR OUT.svg NAME[=LABEL]...",
  );
  process.exit(2);
}
