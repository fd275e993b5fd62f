/**
 * Cluster projection: step time, tokens/s and scaling efficiency of expert- plus data-parallel training
 * on H hosts, from measured per-layer compute rates and measured collective costs (alpha-beta fits).
 *
 * The model (docs/distributed.md states it with its assumptions):
 * - Each host gets globalTokens/H tokens per step and computes, on average, the training FLOPs of those
 *   tokens (experts balanced: every host's experts receive as many assignments as its own tokens send).
 *   Compute seconds = Σ over layer kinds of FLOPs / the measured rate of that kind.
 * - Expert parallelism over p = min(H, E) hosts: each holds E/p experts (H > E: groups of E hosts, each
 *   expert replicated H/E times). Every MoE layer costs 4 all-to-alls per step (dispatch and combine,
 *   forward and backward), each host sending tokens·top_k·d_model activations; pairwise exchange:
 *   t = (p−1)·α + (p−1)/p · bytes · β.
 * - Dense gradients (all but the experts) are all-reduced over all H hosts, expert gradients over
 *   their H/E replicas; ring: t = 2(q−1)·α + 2(q−1)/q · bytes · β. A measured fraction of it hides
 *   behind backward compute (never more than the backward itself).
 * - The all-to-alls sit on the critical path (nothing overlaps them).
 */
import { accounting } from '../model/accounting.js';
import { type GlamConfig, isMoeLayer } from '../model/config.js';
import type { Panel } from '../train/plot.js';

export type LayerKind = 'attention' | 'ffn' | 'moe' | 'output';
export const LAYER_KINDS: readonly LayerKind[] = ['attention', 'ffn', 'moe', 'output'];

/** Per-link cost of one collective step: seconds per message and seconds per byte. */
export interface LinkCost {
  alpha: number;
  beta: number;
}

export interface ProjectionInputs {
  config: GlamConfig;
  /** Tokens per optimizer step over the whole cluster (GLaM: 1M). */
  globalTokens: number;
  /** Context length of the attention FLOPs. */
  seqLen: number;
  /** Achieved training (forward + backward) FLOP/s of one host, per layer kind. */
  rates: Record<LayerKind, number>;
  alltoall: LinkCost;
  allreduce: LinkCost;
  /** Fraction of all-reduce time hidden behind backward compute (measured). */
  hiddenFraction: number;
  /** Bytes per exchanged activation and per all-reduced gradient element (4: float32). */
  activationBytes: number;
  gradientBytes: number;
  /** Memory of one host, to flag configurations whose weights, gradients and optimizer state do not fit. */
  hostMemoryBytes: number;
}

export interface ProjectionPoint {
  hosts: number;
  tokensPerHost: number;
  computeS: number;
  alltoallS: number;
  allreduceS: number;
  exposedAllreduceS: number;
  stepS: number;
  tokensPerS: number;
  /** computeS / stepS: the share of the step that is useful work (1 = linear scaling). */
  efficiency: number;
  /** Weights + gradients + Adafactor state held by one host. */
  memoryPerHostBytes: number;
  fits: boolean;
}

/** Training FLOPs per token of each layer kind, summed over the model (forward + backward = 3 forwards). */
export function trainFlopsPerToken(cfg: GlamConfig, seqLen: number): Record<LayerKind, number> {
  const D = cfg.d_model;
  const HD = cfg.n_heads * cfg.d_head;
  const out: Record<LayerKind, number> = { attention: 0, ffn: 0, moe: 0, output: 6 * cfg.vocab_size * D };
  const expertMats = cfg.expert_gated ? 3 : 2;
  const k = Math.min(cfg.top_k, cfg.n_experts);
  for (let l = 0; l < cfg.n_layers; l++) {
    out.attention += 6 * 4 * D * HD + 12 * HD * seqLen;
    if (isMoeLayer(cfg, l)) out.moe += 6 * D * cfg.n_experts + 6 * k * expertMats * D * cfg.d_ff_expert;
    else out.ffn += 6 * 3 * D * cfg.d_ff;
  }
  return out;
}

function ringAllreduce(link: LinkCost, q: number, bytes: number): number {
  if (q <= 1 || bytes === 0) return 0;
  return 2 * (q - 1) * link.alpha + ((2 * (q - 1)) / q) * bytes * link.beta;
}

function pairwiseAlltoall(link: LinkCost, p: number, bytes: number): number {
  if (p <= 1) return 0;
  return (p - 1) * link.alpha + ((p - 1) / p) * bytes * link.beta;
}

/** Per-link costs from 2-rank fits t = a + b·bytes (allreduce of `bytes`; alltoallv sending `bytes` per rank, half to itself). */
export function linkCostsFromTwoRanks(
  allreduceFit: LinkCost,
  alltoallvFit: LinkCost,
): { allreduce: LinkCost; alltoall: LinkCost } {
  return {
    // Ring on 2 ranks: 2α + bytes·β.
    allreduce: { alpha: allreduceFit.alpha / 2, beta: allreduceFit.beta },
    // Pairwise on 2 ranks: α + bytes/2·β.
    alltoall: { alpha: alltoallvFit.alpha, beta: 2 * alltoallvFit.beta },
  };
}

export function projectCluster(inp: ProjectionInputs, hosts: number): ProjectionPoint {
  const cfg = inp.config;
  if (!Number.isInteger(hosts) || hosts < 1)
    throw new Error(`projection: hosts must be an integer >= 1, got ${hosts}`);
  const acc = accounting(cfg, inp.seqLen);
  const E = cfg.n_experts;
  const tokens = inp.globalTokens / hosts;
  const flops = trainFlopsPerToken(cfg, inp.seqLen);
  let computeS = 0;
  for (const kind of LAYER_KINDS) {
    if (flops[kind] > 0) computeS += (flops[kind] * tokens) / inp.rates[kind];
  }
  // Expert parallel over p hosts; replicas of each expert: H/p.
  const p = E > 0 ? Math.min(hosts, E) : 1;
  const replicas = hosts / p;
  const moeLayers = acc.moe_layers;
  const exchangeBytes = tokens * Math.min(cfg.top_k, Math.max(E, 1)) * cfg.d_model * inp.activationBytes;
  const alltoallS = E > 0 ? 4 * moeLayers * pairwiseAlltoall(inp.alltoall, p, exchangeBytes) : 0;
  const denseParams = acc.total_params - acc.expert_params;
  const expertParamsPerHost = E > 0 ? acc.expert_params / p : 0;
  const allreduceS =
    ringAllreduce(inp.allreduce, hosts, denseParams * inp.gradientBytes) +
    ringAllreduce(inp.allreduce, replicas, expertParamsPerHost * inp.gradientBytes);
  const backwardS = (2 / 3) * computeS;
  const exposedAllreduceS = Math.max((1 - inp.hiddenFraction) * allreduceS, allreduceS - backwardS);
  const stepS = computeS + alltoallS + exposedAllreduceS;
  // Adafactor's factored state, in proportion to the parameters this host holds.
  const heldParams = denseParams + expertParamsPerHost;
  const stateBytes = (acc.adafactor_bytes * heldParams) / acc.total_params;
  const memoryPerHostBytes = heldParams * (4 + inp.gradientBytes) + stateBytes;
  return {
    hosts,
    tokensPerHost: tokens,
    computeS,
    alltoallS,
    allreduceS,
    exposedAllreduceS,
    stepS,
    tokensPerS: inp.globalTokens / stepS,
    efficiency: computeS / stepS,
    memoryPerHostBytes,
    fits: memoryPerHostBytes <= inp.hostMemoryBytes,
  };
}

// ---- inputs from measurement files, table and plot -------------------------------------------------

/** Reads bench/comm_transports.mjs --out: the per-link costs of one transport. */
export function linkCostsFromFile(
  json: unknown,
  transport: string,
): { allreduce: LinkCost; alltoall: LinkCost } {
  const t = (json as { transports?: Record<string, { fits?: Record<string, LinkCost> }> }).transports?.[
    transport
  ];
  const ar = t?.fits?.allreduce;
  const a2a = t?.fits?.alltoallvSync ?? t?.fits?.alltoallv;
  if (ar === undefined || a2a === undefined) {
    throw new Error(`comm measurements: no '${transport}' fits of allreduce and alltoallv(Sync)`);
  }
  return linkCostsFromTwoRanks(ar, a2a);
}

/** Reads `glam bench layers --json`: achieved training FLOP/s per layer kind. */
export function ratesFromFile(json: unknown): Record<LayerKind, number> {
  const rates = (json as { rates?: Record<string, number> }).rates;
  const out = {} as Record<LayerKind, number>;
  for (const k of LAYER_KINDS) {
    const v = rates?.[k];
    if (typeof v !== 'number' || !(v > 0))
      throw new Error(`compute measurements: no positive rate for '${k}'`);
    out[k] = v;
  }
  return out;
}

export interface ConfigProjection {
  name: string;
  points: ProjectionPoint[];
}

export function formatProjection(results: ConfigProjection[]): string {
  const lines = [
    '| config | hosts | tokens/host | compute s | all-to-all s | all-reduce s (exposed) | tokens/s | efficiency | memory/host |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    for (const p of r.points) {
      const gib = p.memoryPerHostBytes / 2 ** 30;
      lines.push(
        `| ${r.name} | ${p.hosts} | ${Math.round(p.tokensPerHost)} | ${p.computeS.toPrecision(3)} | ${p.alltoallS.toPrecision(3)} | ${p.allreduceS.toPrecision(3)} (${p.exposedAllreduceS.toPrecision(3)}) | ${p.tokensPerS.toPrecision(3)} | ${(100 * p.efficiency).toFixed(1)}% | ${gib.toFixed(1)} GiB${p.fits ? '' : ' (does not fit)'} |`,
      );
    }
  }
  return lines.join('\n');
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'];

/** Two panels: tokens/s and scaling efficiency against hosts (log x). */
export function projectionPanels(results: ConfigProjection[], title: string): Panel[] {
  const hosts = [...new Set(results.flatMap((r) => r.points.map((p) => p.hosts)))].sort((a, b) => a - b);
  const series = (f: (p: ProjectionPoint) => number) =>
    results.map((r, i) => ({
      label: r.name,
      color: COLORS[i % COLORS.length]!,
      points: r.points.map((p) => [p.hosts, f(p)] as [number, number]),
    }));
  return [
    {
      title: `${title}: tokens/s`,
      yLabel: 'tokens/s',
      series: series((p) => p.tokensPerS),
      logY: true,
      logX: true,
      xTicks: hosts,
      xLabel: 'hosts',
    },
    {
      title: `${title}: scaling efficiency`,
      yLabel: 'compute time / step time',
      series: series((p) => p.efficiency),
      logX: true,
      xTicks: hosts,
      xLabel: 'hosts',
    },
  ];
}
