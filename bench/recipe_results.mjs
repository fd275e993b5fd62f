#!/usr/bin/env node
/**
 * Assembles docs/results/research.json: the runs of `glam sweep` directories (their research.json, in
 * the order given) and then the recipe probe's runs (bench/recipe_probe.mjs logs), each with its
 * configuration, parameter and FLOP accounting (at the runs' sequence length, 128), tokens and final
 * validation loss (probe runs also carry their validation curve), plus the sweeps' crossing points.
 *
 *   node bench/recipe_results.mjs docs/results/probe docs/results/research.json [--sweep DIR ...]
 */
import { readFileSync, writeFileSync } from 'node:fs';

const dist = new URL('../dist/src/', import.meta.url);
const { accounting } = await import(new URL('model/accounting.js', dist).href);
const { getPreset } = await import(new URL('model/presets.js', dist).href);
const { parseConfig } = await import(new URL('model/config.js', dist).href);
const [logs, outFile, ...rest] = process.argv.slice(2);
const sweepDirs = [];
for (let i = 0; i < rest.length; i += 2) {
  if (rest[i] !== '--sweep' || rest[i + 1] === undefined) {
    console.error(`recipe_results.mjs: expected --sweep DIR, got '${rest[i]}'`);
    process.exit(2);
  }
  sweepDirs.push(rest[i + 1]);
}
if (logs === undefined || outFile === undefined) {
  console.error('usage: recipe_results.mjs LOG_DIR OUT.json [--sweep DIR ...]');
  process.exit(2);
}
// Sweep runs first: each line as the sweep wrote it, with the sweep's plan name and token budget.
const sweepRuns = [];
const crossings = [];
for (const dir of sweepDirs) {
  const r = JSON.parse(readFileSync(`${dir}/research.json`, 'utf8'));
  for (const run of r.runs) sweepRuns.push({ sweep: r.plan, ...run });
  for (const c of r.crossings ?? []) crossings.push({ sweep: r.plan, ...c });
}
const runs = [
  ['moe-vs-dense', 'L-dense-ps03', 'small', {}, 1],
  ['moe-vs-dense', 'L-moe1024-ps03', 'small-moe', { d_ff_expert: 1024, second_expert_policy: 'all' }, 1],
  ['moe-vs-dense', 'S2-dense', 'small', {}, 2],
  ['moe-vs-dense', 'S2-moe1024', 'small-moe', { d_ff_expert: 1024, second_expert_policy: 'all' }, 2],
  ['moe-vs-dense', 'G-moe512-gated', 'small-moe', { expert_gated: true, second_expert_policy: 'all' }, 1],
  ['moe-vs-dense', 'RND-moe512', 'small-moe', { second_expert_policy: 'random' }, 1],
  ['moe-vs-dense', 'S2-RND-moe512', 'small-moe', { second_expert_policy: 'random' }, 2],
  ['capacity-probe', 'X4-dense-ff4096', 'small', { d_ff: 4096 }, 1],
  ['recipe', 'C-dense-ps01', 'small', {}, 1, 'relative steps, lr 0.01'],
  [
    'recipe',
    'C-moe768-ps01',
    'small-moe',
    { d_ff_expert: 768, second_expert_policy: 'all' },
    1,
    'relative steps, lr 0.01',
  ],
  ['recipe', 'D-dense-ps03', 'small', {}, 1, 'relative steps, lr 0.03'],
  [
    'recipe',
    'D-moe768-ps03',
    'small-moe',
    { d_ff_expert: 768, second_expert_policy: 'all' },
    1,
    'relative steps, lr 0.03',
  ],
  ['recipe', 'D-dense-ps10', 'small', {}, 1, 'relative steps, lr 0.1'],
  [
    'recipe',
    'D-moe768-ps10',
    'small-moe',
    { d_ff_expert: 768, second_expert_policy: 'all' },
    1,
    'relative steps, lr 0.1',
  ],
];
const out = [];
for (const [experiment, name, preset, overrides, seed, recipe] of runs) {
  let recs;
  try {
    recs = readFileSync(`${logs}/${name}.jsonl`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
  } catch {
    continue; // not run (yet)
  }
  const withVal = recs.filter((r) => r.val !== undefined);
  const last = withVal[withVal.length - 1];
  const cfg = parseConfig({ ...getPreset(preset), ...overrides });
  const acc = accounting(cfg, 128);
  out.push({
    experiment,
    name,
    preset,
    overrides,
    n_experts: cfg.n_experts,
    active_params: acc.active_params,
    total_params: acc.total_params,
    train_flops: acc.train_flops_per_token * last.tokens,
    tokens: last.tokens,
    steps: last.step,
    val_loss: last.val,
    seed,
    recipe: recipe ?? 'default (relative steps, lr 0.03)',
    dataset: 'default before the nlp-corpus web source (vocabulary 4096)',
    val_curve: withVal.map((r) => [r.tokens, r.val]),
  });
}
const lines = (xs) => xs.map((r) => `  ${JSON.stringify(r)}`).join(',\n');
writeFileSync(
  outFile,
  `{\n "source": "glam sweep runs (sweep: the plan) and bench/recipe_probe.mjs logs in docs/results/probe/; 8x128 tokens per step; parameters and FLOPs from the model accounting at sequence length 128",\n "runs": [\n${lines([...sweepRuns, ...out])}\n ],\n "crossings": [\n${lines(crossings)}\n ]\n}\n`,
);
console.log(out.map((r) => `${r.name} ${r.steps} ${r.val_loss}`).join('\n'));
