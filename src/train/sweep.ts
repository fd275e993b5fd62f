/**
 * Research sweeps: named sets of seeded training runs that test GLaM's claims at CPU scale
 * (MoE against dense at equal tokens, the number of experts, capacity, the quality filter),
 * and the analysis of their metrics (final validation losses, FLOPs, where curves cross,
 * routing health, plots). `glam sweep` runs a plan by starting `glam train` once per run;
 * this module only describes plans and reads what the runs wrote.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { accounting } from '../model/accounting.js';
import { type GlamConfig, parseConfig } from '../model/config.js';
import { getPreset } from '../model/presets.js';
import { READ_LIMITS, readJsonFile, readLines } from '../util/files.js';
import { type LegendEntry, type Panel, renderSvg, type Series } from './plot.js';
import { METRICS_FILE } from './trainer.js';

/** One training run of a sweep: a preset with overrides, a seed and a dataset. */
export interface SweepRun {
  /** Directory name under the sweep's runs/, unique within the sweep. */
  name: string;
  /** Short label for tables and legends. */
  label: string;
  preset: string;
  overrides: Partial<GlamConfig>;
  seed: number;
  /** Name of one of the plan's datasets. */
  dataset: string;
  /** Extra `glam train` flags (recipe variations). */
  args: string[];
}

/** A dataset a sweep trains on: the bundled default, or one prepared from a data config. */
export interface SweepDataset {
  name: string;
  /** null: the default dataset (`glam train`'s --data default). Else a data config for `glam prepare`. */
  dataConfig: Record<string, unknown> | null;
  /** Reuse this dataset's tokenizer (so losses compare token for token). */
  tokenizerOf?: string;
}

export interface SweepExperiment {
  /** Id used in research.json ("experiment") and file names. */
  id: string;
  title: string;
  /** Run names, each with its short legend label in this experiment. */
  runs: { name: string; label: string }[];
  /** Held-out text the comparison is judged on: the run's own validation, or one category set of a dataset. */
  judgedOn?: { dataset: string; categories: string[] };
}

export interface SweepPlan {
  name: string;
  description: string;
  /** Training tokens per run. */
  tokens: number;
  batch: number;
  seqLen: number;
  evalEvery: number;
  evalBatches: number;
  datasets: SweepDataset[];
  runs: SweepRun[];
  experiments: SweepExperiment[];
}

/** The token budget of the issue's comparison: about 10 minutes of `small-moe` on two cores. */
export const DEFAULT_SWEEP_TOKENS = 2_600_000;

const run = (
  name: string,
  label: string,
  preset: string,
  overrides: Partial<GlamConfig>,
  seed: number,
  extra: Partial<Pick<SweepRun, 'dataset' | 'args'>> = {},
): SweepRun => ({ name, label, preset, overrides, seed, dataset: 'default', args: [], ...extra });

/** Experiment 1's MoE family: experts of the dense model's d_ff (as GLaM), only E varies. */
const EXPERT_COUNTS = [4, 8, 16, 32, 64];

function allRuns(): { runs: SweepRun[]; experiments: SweepExperiment[] } {
  const runs: SweepRun[] = [];
  const add = (r: SweepRun, label: string): { name: string; label: string } => {
    if (!runs.some((x) => x.name === r.name)) runs.push(r);
    return { name: r.name, label };
  };
  const dense = (seed: number) => run(`small-s${seed}`, `small (dense), seed ${seed}`, 'small', {}, seed);
  const moe = (seed: number) =>
    run(`small-moe-s${seed}`, `small-moe (16 experts), seed ${seed}`, 'small-moe', {}, seed);
  // The default recipe: the two CPU presets, two seeds (the headline comparison).
  const headline = [1, 2].flatMap((seed) => [
    add(dense(seed), `dense s${seed}`),
    add(moe(seed), `MoE s${seed}`),
  ]);
  // 1. Experts: dense against E = 4..64 experts of the dense d_ff (equal activated size), seed 1.
  const experts = [add(dense(1), 'dense')];
  for (const e of EXPERT_COUNTS) {
    const r =
      e === 16
        ? moe(1)
        : run(`moe-${e}e-s1`, `small-moe with ${e} experts`, 'small-moe', { n_experts: e }, 1);
    experts.push(add(r, `${e}E`));
  }
  // 3. Capacity factor and second-expert policy at 16 experts (2.0 with the preset's policy is the
  // default run).
  const presetPolicy = getPreset('small-moe').second_expert_policy;
  const capacity = [add(moe(1), `cf 2, ${presetPolicy}`)];
  const variants = [
    [1.0, 'all'],
    [1.25, 'all'],
    [0, 'all'],
    [2.0, 'all'],
    [2.0, 'random'],
    [1.25, 'random'],
  ] as const;
  for (const [cf, policy] of variants.filter(([cf, policy]) => cf !== 2.0 || policy !== presetPolicy)) {
    const what = cf === 0 ? 'dropless' : `cf ${cf}`;
    const tag = `${cf === 0 ? 'dropless' : `cf${cf}`}-${policy}`;
    const r = run(
      `moe16-${tag}-s1`,
      `small-moe, ${what}, second expert ${policy}`,
      'small-moe',
      { capacity_factor: cf, second_expert_policy: policy },
      1,
    );
    capacity.push(add(r, `${what}, ${policy}`));
  }
  // 2. Quality filter: the default model on the unfiltered web text (same tokenizer).
  const unfiltered = run('small-moe-unfiltered-s1', 'small-moe on unfiltered web text', 'small-moe', {}, 1, {
    dataset: 'unfiltered',
  });
  const quality = [add(moe(1), 'filtered'), add(unfiltered, 'unfiltered')];
  return {
    runs,
    experiments: [
      { id: 'default', title: 'small vs small-moe, default recipe', runs: headline },
      { id: 'experts', title: 'dense vs 4-64 experts', runs: experts },
      { id: 'capacity', title: 'capacity and second-expert policy', runs: capacity },
      {
        id: 'quality',
        title: 'quality filter',
        runs: quality,
        judgedOn: { dataset: 'default', categories: ['books', 'wikipedia'] },
      },
    ],
  };
}

/**
 * The built-in plans. `research` holds every experiment; the others are its parts, sharing
 * runs by name (a run one plan finished is not trained again by another in the same --out).
 */
export function builtinPlan(name: string, tokens = DEFAULT_SWEEP_TOKENS): SweepPlan {
  const { runs, experiments } = allRuns();
  const pick = (ids: string[]): Pick<SweepPlan, 'runs' | 'experiments'> => {
    const ex = experiments.filter((e) => ids.includes(e.id));
    const names = new Set(ex.flatMap((e) => e.runs.map((r) => r.name)));
    return { runs: runs.filter((r) => names.has(r.name)), experiments: ex };
  };
  const parts: Record<string, [string, string[]]> = {
    research: ['every experiment of docs/results.md', ['default', 'experts', 'capacity', 'quality']],
    default: ['small vs small-moe with the default recipe, two seeds', ['default']],
    experts: ['dense vs MoE with 4, 8, 16, 32, 64 experts at equal activated size', ['experts']],
    capacity: ['capacity factor 1.0 / 1.25 / 2.0 / dropless and second-expert policy', ['capacity']],
    quality: ['quality filter ablation: filtered vs unfiltered web text', ['quality']],
  };
  const part = parts[name];
  if (part === undefined) {
    throw new Error(`unknown sweep plan '${name}' (built-in: ${Object.keys(parts).join(', ')})`);
  }
  const chosen = pick(part[1]);
  const usesUnfiltered = chosen.runs.some((r) => r.dataset === 'unfiltered');
  return {
    name,
    description: part[0],
    tokens,
    batch: 8,
    seqLen: 128,
    evalEvery: 100,
    evalBatches: 16,
    datasets: [
      { name: 'default', dataConfig: null },
      ...(usesUnfiltered
        ? [{ name: 'unfiltered', dataConfig: { quality: { enabled: false } }, tokenizerOf: 'default' }]
        : []),
    ],
    ...chosen,
  };
}

export const BUILTIN_PLANS = ['research', 'default', 'experts', 'capacity', 'quality'] as const;

/** The model config of a run, with the dataset's vocabulary. */
export function runConfig(r: SweepRun, vocabSize: number): GlamConfig {
  const base = getPreset(r.preset);
  return parseConfig({ ...base, ...r.overrides, vocab_size: vocabSize }, `sweep run '${r.name}'`);
}

/** One validation point of a run. */
export interface CurvePoint {
  step: number;
  tokens: number;
  /** Validation cross-entropy (the LM part of the loss: comparable between dense and MoE). */
  valLm: number;
}

/** Routing health at one logged step: per MoE layer. */
export interface RoutingPoint {
  step: number;
  /** Per layer: the least-loaded expert's share relative to the mean (1 = balanced). */
  minLoad: number[];
  droppedFraction: number[];
  routerEntropy: number[];
}

export interface RunMetrics {
  curve: CurvePoint[];
  routing: RoutingPoint[];
  steps: number;
  tokens: number;
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** What a run's metrics.jsonl says: its validation curve and routing health (unreadable lines skipped). */
export function readRunMetrics(runDir: string): RunMetrics {
  const curve: CurvePoint[] = [];
  const routing: RoutingPoint[] = [];
  let steps = 0;
  let tokens = 0;
  const file = path.join(runDir, METRICS_FILE);
  if (!existsSync(file)) return { curve, routing, steps, tokens };
  for (const { line } of readLines(file)) {
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (!isNum(r.step) || !isNum(r.tokens_seen) || !isNum(r.loss)) continue;
    steps = r.step;
    tokens = r.tokens_seen;
    if (isNum(r.val_lm_loss)) curve.push({ step: r.step, tokens: r.tokens_seen, valLm: r.val_lm_loss });
    const load = r.expert_load;
    if (Array.isArray(load) && load.length > 0) {
      const minLoad = load.map((l) =>
        Array.isArray(l) && l.length > 0 ? Math.min(...(l as number[])) * l.length : Number.NaN,
      );
      const perLayer = (v: unknown, fallback: unknown): number[] =>
        Array.isArray(v) ? (v as number[]) : load.map(() => (isNum(fallback) ? fallback : Number.NaN));
      routing.push({
        step: r.step,
        minLoad,
        droppedFraction: perLayer(r.layer_dropped_fraction, r.dropped_fraction),
        routerEntropy: perLayer(r.layer_router_entropy, r.router_entropy),
      });
    }
  }
  return { curve, routing, steps, tokens };
}

/** One run's line in research.json (the shape docs/results.md explains). */
export interface ResearchRun {
  name: string;
  experiment: string;
  label: string;
  n_experts: number;
  active_params: number;
  total_params: number;
  train_flops: number;
  tokens: number;
  val_loss: number;
  seed: number;
  capacity_factor?: number;
  second_expert_policy?: string;
  dataset: string;
  /** Mean over the last 100 steps (MoE only): dropped fraction and least-loaded expert / mean. */
  dropped_fraction_last100?: number;
  min_load_last100?: number;
}

/** Mean of the routing records in the last `window` steps of a run (MoE runs). */
export function routingTail(
  routing: RoutingPoint[],
  window = 100,
): { dropped: number; minLoad: number } | undefined {
  if (routing.length === 0) return undefined;
  const last = routing[routing.length - 1]!.step;
  const tail = routing.filter((p) => p.step > last - window);
  const mean = (xs: number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;
  return {
    dropped: mean(tail.map((p) => mean(p.droppedFraction))),
    // The least-loaded expert of any layer, averaged over the window.
    minLoad: mean(tail.map((p) => Math.min(...p.minLoad))),
  };
}

/** research.json's line for a finished run (final validation loss = its last validation point). */
export function researchRun(
  r: SweepRun,
  experiment: string,
  cfg: GlamConfig,
  seqLen: number,
  m: RunMetrics,
  valLoss = m.curve[m.curve.length - 1]?.valLm ?? Number.NaN,
): ResearchRun {
  const acc = accounting(cfg, seqLen);
  const out: ResearchRun = {
    name: r.name,
    experiment,
    label: r.label,
    n_experts: cfg.n_experts,
    active_params: acc.active_params,
    total_params: acc.total_params,
    train_flops: acc.train_flops_per_token * m.tokens,
    tokens: m.tokens,
    val_loss: valLoss,
    seed: r.seed,
    dataset: r.dataset,
  };
  if (cfg.n_experts > 0) {
    out.capacity_factor = cfg.capacity_factor;
    out.second_expert_policy = cfg.second_expert_policy;
    const tail = routingTail(m.routing);
    if (tail !== undefined) {
      out.dropped_fraction_last100 = tail.dropped;
      out.min_load_last100 = tail.minLoad;
    }
  }
  return out;
}

/**
 * Tokens from which `b`'s validation curve stays below `a`'s (both sampled at the same
 * steps), or null when it never does by the end. Compares at the points both runs logged.
 */
export function crossingTokens(a: CurvePoint[], b: CurvePoint[]): number | null {
  const bAt = new Map(b.map((p) => [p.step, p]));
  const shared = a.filter((p) => bAt.has(p.step));
  let from: number | null = null;
  for (const p of shared) {
    const q = bAt.get(p.step)!;
    if (q.valLm < p.valLm) from ??= q.tokens;
    else from = null;
  }
  return from;
}

/** Runs with the same variant differ only in their seed: the key they are grouped by in plots and tables. */
export const variantOf = (r: SweepRun): string => JSON.stringify([r.preset, r.overrides, r.dataset, r.args]);

/** What pairing a run with the dense run of its seed needs to know. */
interface Pairable {
  seed: number;
  dataset: string;
  dense: boolean;
}

/** The dense run of `run`'s seed and dataset among `runs`, if any. */
function denseRunOf<T extends Pairable>(runs: T[], run: T): T | undefined {
  return runs.find((d) => d.dense && d.seed === run.seed && d.dataset === run.dataset);
}

/** A label without its seed ("small (dense), seed 2" -> "small (dense)", "MoE s2" -> "MoE"). */
const withoutSeed = (label: string): string => label.replace(/,\s*seed \d+|\s+s\d+\b/, '');

/** One MoE variant's final validation loss minus that of the dense run of each seed (same data). */
export interface PairedGap {
  /** The variant's label without its seed. */
  label: string;
  gaps: { seed: number; gap: number }[];
  mean: number;
  /** Sample standard deviation over the seeds (null with one seed). */
  sd: number | null;
}

/**
 * Final MoE - dense gaps, paired by seed and dataset, grouped by variant (runs that differ only in
 * their seed): the comparison docs/results.md draws its conclusions from.
 */
export function pairedGaps(
  runs: (Pairable & { label: string; variant: string; valLoss: number })[],
): PairedGap[] {
  const out: PairedGap[] = [];
  for (const variant of new Set(runs.filter((r) => !r.dense).map((r) => r.variant))) {
    const members = runs.filter((r) => r.variant === variant);
    const gaps = members.flatMap((m) => {
      const d = denseRunOf(runs, m);
      return d === undefined ? [] : [{ seed: m.seed, gap: m.valLoss - d.valLoss }];
    });
    if (gaps.length === 0) continue;
    const mean = gaps.reduce((a, g) => a + g.gap, 0) / gaps.length;
    const sd =
      gaps.length < 2
        ? null
        : Math.sqrt(gaps.reduce((a, g) => a + (g.gap - mean) ** 2, 0) / (gaps.length - 1));
    out.push({ label: withoutSeed(members[0]!.label), gaps, mean, sd });
  }
  return out;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
/** Line styles that tell seeds apart where a colour stands for a run's variant. */
const SEED_DASHES = [undefined, '8 4', '2 2', '9 3 2 3', '14 3 2 3 2 3'];

/** One run's validation curve, as the sweep's plots take it. */
export interface CurveRun extends Pairable {
  label: string;
  curve: CurvePoint[];
  flopsPerToken: number;
  seed: number;
  /** Runs that differ only in their seed share a variant (and a colour): `variantOf`. */
  variant: string;
}

/** The y range that shows the later part of every curve: from the lowest point up to where they stand at `from` of the run. */
function laterRange(series: Series[], from: number, withZero: boolean): [number, number] | undefined {
  let xmax = Number.NEGATIVE_INFINITY;
  for (const s of series) for (const [x] of s.points) xmax = Math.max(xmax, x);
  let lo = withZero ? 0 : Number.POSITIVE_INFINITY;
  let hi = withZero ? 0 : Number.NEGATIVE_INFINITY;
  for (const s of series) {
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y) || x < from * xmax) continue;
      lo = Math.min(lo, y);
      hi = Math.max(hi, y);
    }
  }
  if (!(hi > lo)) return undefined;
  const margin = (hi - lo) * 0.08;
  return [lo - margin, hi + margin];
}

/**
 * Validation loss against tokens and against training FLOPs, one series per run, and where dense
 * runs have MoE runs of the same seed and data, the MoE's difference from its dense run. When a
 * variant has several seeds, colour marks the variant and line style the seed.
 */
export function curvePanels(title: string, runs: CurveRun[]): Panel[] {
  const variants = [...new Set(runs.map((r) => r.variant))];
  const seeds = [...new Set(runs.map((r) => r.seed))].sort((a, b) => a - b);
  const bySeed = variants.some((v) => runs.filter((r) => r.variant === v).length > 1);
  const style = (r: CurveRun, i: number): Pick<Series, 'color' | 'dash'> =>
    bySeed
      ? {
          color: COLORS[variants.indexOf(r.variant) % COLORS.length]!,
          dash: SEED_DASHES[seeds.indexOf(r.seed) % SEED_DASHES.length],
        }
      : { color: COLORS[i % COLORS.length]! };
  const variantEntries = (keep: (v: string) => boolean): LegendEntry[] =>
    variants.flatMap((v, i) =>
      keep(v)
        ? [
            {
              label: withoutSeed(runs.find((r) => r.variant === v)!.label),
              color: COLORS[i % COLORS.length]!,
            },
          ]
        : [],
    );
  const seedEntries: LegendEntry[] = seeds.map((seed, i) => ({
    label: `seed ${seed}`,
    color: '#555',
    dash: SEED_DASHES[i % SEED_DASHES.length],
  }));
  const legend = bySeed ? [...variantEntries(() => true), ...seedEntries] : undefined;
  const series = (x: (p: CurvePoint, f: number) => number): Series[] =>
    runs.map((r, i) => ({
      label: r.label,
      ...style(r, i),
      points: r.curve.map((p) => [x(p, r.flopsPerToken), p.valLm] as [number, number]),
    }));
  const byTokens = series((p) => p.tokens);
  const byFlops = series((p, f) => p.tokens * f);
  const panels: Panel[] = [
    {
      title: `${title}: validation loss`,
      xLabel: 'training tokens',
      yLabel: 'validation loss (nats)',
      series: byTokens,
      legend,
      yRange: laterRange(byTokens, 0.25, false),
    },
    {
      title: 'against training FLOPs',
      xLabel: 'training FLOPs',
      yLabel: 'validation loss (nats)',
      series: byFlops,
      legend,
      yRange: laterRange(byFlops, 0.25, false),
    },
  ];
  const differences: Series[] = [];
  runs.forEach((moe, i) => {
    const dense = denseRunOf(runs, moe);
    if (moe.dense || dense === undefined) return;
    const at = new Map(dense.curve.map((p) => [p.step, p.valLm]));
    const points = moe.curve
      .filter((p) => at.has(p.step))
      .map((p) => [p.tokens, p.valLm - at.get(p.step)!] as [number, number]);
    differences.push({ label: moe.label, ...style(moe, i), points });
  });
  if (differences.length > 0) {
    const hasMoe = (v: string): boolean => runs.some((r) => r.variant === v && !r.dense);
    panels.push({
      title: 'MoE minus dense of the same seed (below 0: the MoE is ahead)',
      xLabel: 'training tokens',
      yLabel: 'validation loss difference (nats)',
      series: differences,
      legend: bySeed ? [...variantEntries(hasMoe), ...seedEntries] : undefined,
      yRange: laterRange(differences, 0.25, true),
    });
  }
  return panels;
}

/** Routing health of one MoE run over its steps: per layer dropped fraction, min load, entropy. */
export function routingPanels(label: string, routing: RoutingPoint[]): Panel[] {
  const layers = routing[0]?.minLoad.length ?? 0;
  const per = (pick: (p: RoutingPoint) => number[]): Series[] =>
    Array.from({ length: layers }, (_, l) => ({
      label: `MoE layer ${l + 1}`,
      color: COLORS[l % COLORS.length]!,
      points: routing.map((p) => [p.step, pick(p)[l]!] as [number, number]),
    }));
  return [
    {
      title: `${label}: dropped fraction`,
      xLabel: 'step',
      yLabel: 'dropped fraction',
      series: per((p) => p.droppedFraction),
    },
    {
      title: `${label}: least-loaded expert`,
      xLabel: 'step',
      yLabel: 'load / mean load',
      series: per((p) => p.minLoad),
    },
    {
      title: `${label}: router entropy`,
      xLabel: 'step',
      yLabel: 'nats',
      series: per((p) => p.routerEntropy),
    },
  ];
}

export { renderSvg };

/** A plan from a JSON file: the same shape as the built-in plans (checked enough to fail clearly). */
export function loadPlanFile(file: string): SweepPlan {
  let raw: unknown;
  try {
    raw = readJsonFile(file, READ_LIMITS.json, 'sweep plan');
  } catch (err) {
    throw new Error(`${file}: not a readable JSON plan (${(err as Error).message})`);
  }
  const p = raw as Partial<SweepPlan>;
  const fail = (what: string): never => {
    throw new Error(`${file}: ${what}`);
  };
  if (typeof p !== 'object' || p === null) fail('expected a JSON object');
  for (const k of ['tokens', 'batch', 'seqLen', 'evalEvery', 'evalBatches'] as const) {
    if (!Number.isInteger(p[k]) || (p[k] as number) < 1) fail(`'${k}' must be a positive integer`);
  }
  if (!Array.isArray(p.runs) || p.runs.length === 0) fail("'runs' must be a non-empty array");
  const datasets = Array.isArray(p.datasets) ? p.datasets : [{ name: 'default', dataConfig: null }];
  const names = new Set<string>();
  for (const r of p.runs!) {
    if (typeof r?.name !== 'string' || !/^[A-Za-z0-9._-]+$/.test(r.name))
      fail(`run name ${JSON.stringify(r?.name)} must be [A-Za-z0-9._-]+`);
    if (names.has(r.name)) fail(`run name '${r.name}' appears twice`);
    names.add(r.name);
    if (!datasets.some((d) => d.name === (r.dataset ?? 'default')))
      fail(`run '${r.name}': unknown dataset '${r.dataset}'`);
  }
  return {
    name: p.name ?? path.basename(file, '.json'),
    description: p.description ?? '',
    tokens: p.tokens!,
    batch: p.batch!,
    seqLen: p.seqLen!,
    evalEvery: p.evalEvery!,
    evalBatches: p.evalBatches!,
    datasets,
    runs: p.runs!.map((r) => ({
      name: r.name,
      label: r.label ?? r.name,
      preset: r.preset,
      overrides: r.overrides ?? {},
      seed: r.seed ?? 0,
      dataset: r.dataset ?? 'default',
      args: r.args ?? [],
    })),
    experiments: p.experiments ?? [
      {
        id: 'runs',
        title: p.name ?? 'runs',
        runs: p.runs!.map((r) => ({ name: r.name, label: r.label ?? r.name })),
      },
    ],
  };
}
