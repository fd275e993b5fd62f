#!/usr/bin/env node
/**
 * Assembles docs/results/research.json from the recipe probe's logs (bench/recipe_probe.mjs): the
 * runs quoted in docs/results.md, each with its configuration, parameter and FLOP accounting (at the
 * runs' sequence length, 128), tokens, final validation loss and validation curve.
 *
 *   node bench/recipe_results.mjs docs/results/probe docs/results/research.json
 */
import { readFileSync, writeFileSync } from 'node:fs';

const dist = new URL('../dist/src/', import.meta.url);
const { accounting } = await import(new URL('model/accounting.js', dist).href);
const { getPreset } = await import(new URL('model/presets.js', dist).href);
const { parseConfig } = await import(new URL('model/config.js', dist).href);
const [logs, outFile] = process.argv.slice(2);
if (logs === undefined || outFile === undefined) {
  console.error('usage: recipe_results.mjs LOG_DIR OUT.json');
  process.exit(2);
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
    val_curve: withVal.map((r) => [r.tokens, r.val]),
  });
}
writeFileSync(
  outFile,
  `{\n "source": "bench/recipe_probe.mjs logs in docs/results/probe/; 8x128 tokens per step; parameters and FLOPs from the model accounting at sequence length 128",\n "runs": [\n${out.map((r) => `  ${JSON.stringify(r)}`).join(',\n')}\n ]\n}\n`,
);
console.log(out.map((r) => `${r.name} ${r.steps} ${r.val_loss}`).join('\n'));
